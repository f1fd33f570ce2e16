//! The byte transports under HiveServer2's binary Thrift protocol: SASL (PLAIN) and NOSASL.
//!
//! Source: Apache Thrift's `TSaslTransport`/`TSaslClientTransport` (as HiveServer2 uses them
//! with `hive.server2.authentication` NONE, LDAP, CUSTOM, PAM: mechanism PLAIN) and RFC 4616
//! (PLAIN). Negotiation messages are a status byte (START=1, OK=2, BAD=3, ERROR=4,
//! COMPLETE=5), a 4-byte big-endian length and the payload. The client sends START with the
//! mechanism name, then its initial response `authzid \0 authcid \0 password` with status
//! COMPLETE (PLAIN finishes in one step); the server answers COMPLETE, or BAD/ERROR with a
//! message. Afterwards every Thrift message is sent as a frame: 4-byte big-endian length and
//! the bytes (PLAIN negotiates no integrity or confidentiality layer). With NOSASL the Thrift
//! messages go over the socket as they are, unframed.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::protocol::{DecodeError, MAX_LENGTH};

/// SASL negotiation status bytes.
pub(crate) mod sasl_status {
    pub(crate) const START: u8 = 1;
    pub(crate) const OK: u8 = 2;
    pub(crate) const BAD: u8 = 3;
    pub(crate) const ERROR: u8 = 4;
    pub(crate) const COMPLETE: u8 = 5;
}

/// The largest frame (or unframed message) accepted from a server.
pub(crate) const MAX_FRAME: usize = MAX_LENGTH;

/// A transport failure.
#[derive(Debug)]
pub(crate) enum TransportError {
    /// The socket failed or closed.
    Io(String),
    /// SASL negotiation was refused.
    Auth(String),
    /// The peer sent something the protocol does not allow.
    Protocol(String),
}

/// One SASL negotiation message.
pub(crate) fn sasl_message(status: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(status);
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(payload);
    out
}

/// The PLAIN initial response (empty authorization id).
pub(crate) fn plain_response(user: &str, password: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + user.len() + password.len());
    out.push(0);
    out.extend_from_slice(user.as_bytes());
    out.push(0);
    out.extend_from_slice(password.as_bytes());
    out
}

/// A data frame: 4-byte big-endian length and the payload.
pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(payload);
    out
}

fn io(e: std::io::Error) -> TransportError {
    TransportError::Io(e.to_string())
}

/// A connected transport.
#[derive(Debug)]
pub(crate) struct Transport {
    stream: TcpStream,
    framed: bool,
    /// Received bytes not yet consumed by a decoded message.
    pending: Vec<u8>,
}

impl Transport {
    /// Connects (TCP only; call [`Transport::sasl_plain`] next for SASL).
    pub(crate) async fn connect(host: &str, port: u16) -> Result<Self, TransportError> {
        let stream = TcpStream::connect((host, port)).await.map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        Ok(Self {
            stream,
            framed: false,
            pending: Vec::new(),
        })
    }

    /// Runs SASL PLAIN negotiation; afterwards messages are framed.
    pub(crate) async fn sasl_plain(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<(), TransportError> {
        let mut out = sasl_message(sasl_status::START, b"PLAIN");
        out.extend_from_slice(&sasl_message(
            sasl_status::COMPLETE,
            &plain_response(user, password),
        ));
        self.stream.write_all(&out).await.map_err(io)?;
        loop {
            let mut head = [0u8; 5];
            self.stream.read_exact(&mut head).await.map_err(|e| {
                TransportError::Io(format!(
                    "connection closed during SASL negotiation ({e}); does the server use SASL?"
                ))
            })?;
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            if len > 1 << 20 {
                return Err(TransportError::Protocol(format!(
                    "SASL message of {len} bytes (status {}); is this a HiveServer2 binary endpoint?",
                    head[0]
                )));
            }
            let mut payload = vec![0u8; len];
            self.stream.read_exact(&mut payload).await.map_err(io)?;
            match head[0] {
                sasl_status::COMPLETE => break,
                // PLAIN has no challenge; an OK with an empty challenge gets an empty answer.
                sasl_status::OK => {
                    self.stream
                        .write_all(&sasl_message(sasl_status::COMPLETE, &[]))
                        .await
                        .map_err(io)?;
                }
                sasl_status::BAD | sasl_status::ERROR => {
                    return Err(TransportError::Auth(
                        String::from_utf8_lossy(&payload).into_owned(),
                    ));
                }
                other => {
                    return Err(TransportError::Protocol(format!(
                        "unexpected SASL status {other}"
                    )));
                }
            }
        }
        self.framed = true;
        Ok(())
    }

    /// Sends one Thrift message.
    pub(crate) async fn send(&mut self, message: &[u8]) -> Result<(), TransportError> {
        if self.framed {
            self.stream.write_all(&frame(message)).await.map_err(io)?;
        } else {
            self.stream.write_all(message).await.map_err(io)?;
        }
        self.stream.flush().await.map_err(io)
    }

    /// Receives one Thrift message, decoding with `decode` (which returns the value and the
    /// bytes it used, or [`DecodeError::Incomplete`] to ask for more input).
    pub(crate) async fn receive<T, E>(
        &mut self,
        mut decode: impl FnMut(&[u8]) -> Result<(T, usize), E>,
        incomplete: impl Fn(&E) -> bool,
    ) -> Result<Result<T, E>, TransportError> {
        loop {
            if let Some(reply) = take_message(&mut self.pending, &mut decode, &incomplete) {
                return Ok(reply);
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> Result<(), TransportError> {
        if self.framed {
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).await.map_err(io)?;
            let len = frame_length(len, self.pending.len())?;
            let start = self.pending.len();
            self.pending.resize(start + len, 0);
            self.stream
                .read_exact(&mut self.pending[start..])
                .await
                .map_err(io)?;
        } else {
            if self.pending.len() >= MAX_FRAME {
                return Err(TransportError::Protocol(
                    "message exceeds the size limit".into(),
                ));
            }
            // One awaited read, then whatever else is already buffered (without waiting), so
            // a large reply is decoded once per burst rather than once per socket read.
            let want = self.pending.len().clamp(64 << 10, 8 << 20);
            let start = self.pending.len();
            self.pending.resize(start + want, 0);
            let mut filled = start;
            let n = self
                .stream
                .read(&mut self.pending[filled..])
                .await
                .map_err(io)?;
            filled += n;
            if n > 0 {
                while filled < start + want {
                    match self.stream.try_read(&mut self.pending[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(io(e)),
                    }
                }
            }
            self.pending.truncate(filled);
            if filled == start {
                return Err(TransportError::Io("connection closed by the server".into()));
            }
        }
        Ok(())
    }

    /// Shuts the socket down (best effort).
    pub(crate) async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// Decodes one message from the front of `pending` and removes its bytes; `None` when more
/// bytes are needed. After a decode error the buffer is dropped (the stream is out of step).
pub(crate) fn take_message<T, E>(
    pending: &mut Vec<u8>,
    decode: &mut impl FnMut(&[u8]) -> Result<(T, usize), E>,
    incomplete: &impl Fn(&E) -> bool,
) -> Option<Result<T, E>> {
    if pending.is_empty() {
        return None;
    }
    match decode(pending) {
        Ok((v, used)) => {
            pending.drain(..used.min(pending.len()));
            Some(Ok(v))
        }
        Err(e) if incomplete(&e) => None,
        Err(e) => {
            pending.clear();
            Some(Err(e))
        }
    }
}

/// The length of the next SASL data frame from its 4-byte big-endian header, refused when it
/// (with the `pending` bytes of the message so far) exceeds [`MAX_FRAME`].
pub(crate) fn frame_length(head: [u8; 4], pending: usize) -> Result<usize, TransportError> {
    let len = u32::from_be_bytes(head) as usize;
    if len > MAX_FRAME || pending + len > MAX_FRAME {
        return Err(TransportError::Protocol(format!(
            "frame of {len} bytes exceeds the limit"
        )));
    }
    Ok(len)
}

/// Whether a decode error asks for more bytes.
pub(crate) fn is_incomplete(e: &DecodeError) -> bool {
    matches!(e, DecodeError::Incomplete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_start_and_plain_bytes() {
        assert_eq!(
            sasl_message(sasl_status::START, b"PLAIN"),
            [1, 0, 0, 0, 5, b'P', b'L', b'A', b'I', b'N']
        );
        assert_eq!(
            sasl_message(sasl_status::COMPLETE, &plain_response("hive", "pw")),
            [5, 0, 0, 0, 8, 0, b'h', b'i', b'v', b'e', 0, b'p', b'w']
        );
        assert_eq!(frame(&[0xaa, 0xbb]), [0, 0, 0, 2, 0xaa, 0xbb]);
    }

    /// A scripted server: checks the negotiation bytes, answers COMPLETE, then echoes a
    /// message split over two frames back in one frame.
    #[tokio::test]
    async fn sasl_negotiation_and_framing_over_a_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut start = [0u8; 10];
            s.read_exact(&mut start).await.unwrap();
            assert_eq!(start, [1, 0, 0, 0, 5, b'P', b'L', b'A', b'I', b'N']);
            let mut resp = [0u8; 12];
            s.read_exact(&mut resp).await.unwrap();
            assert_eq!(resp, [5, 0, 0, 0, 7, 0, b'u', 0, b's', b'e', b'c', b'r']);
            s.write_all(&sasl_message(sasl_status::COMPLETE, &[]))
                .await
                .unwrap();
            let mut got = [0u8; 7];
            s.read_exact(&mut got).await.unwrap();
            assert_eq!(got, [0, 0, 0, 3, 7, 8, 9]);
            // The reply arrives split in two frames.
            s.write_all(&[0, 0, 0, 2, 1, 2, 0, 0, 0, 1, 3])
                .await
                .unwrap();
        });
        let mut t = Transport::connect("127.0.0.1", port).await.unwrap();
        t.sasl_plain("u", "secr").await.unwrap();
        t.send(&[7, 8, 9]).await.unwrap();
        // "Decode" three bytes; fewer are incomplete.
        let got = t
            .receive(
                |b: &[u8]| {
                    if b.len() >= 3 {
                        Ok((b[..3].to_vec(), 3))
                    } else {
                        Err(DecodeError::Incomplete)
                    }
                },
                is_incomplete,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, [1, 2, 3]);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn sasl_refusal_is_an_auth_error_and_huge_frames_are_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(&sasl_message(
                sasl_status::BAD,
                b"Error validating the login",
            ))
            .await
            .unwrap();
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(&sasl_message(sasl_status::COMPLETE, &[]))
                .await
                .unwrap();
            s.write_all(&[0x7f, 0xff, 0xff, 0xff]).await.unwrap();
            let _ = s.read(&mut buf).await;
        });
        let mut t = Transport::connect("127.0.0.1", port).await.unwrap();
        match t.sasl_plain("u", "bad").await {
            Err(TransportError::Auth(m)) => assert_eq!(m, "Error validating the login"),
            other => panic!("{other:?}"),
        }
        let mut t = Transport::connect("127.0.0.1", port).await.unwrap();
        t.sasl_plain("u", "p").await.unwrap();
        let r = t
            .receive(
                |_b: &[u8]| Err::<((), usize), _>(DecodeError::Incomplete),
                is_incomplete,
            )
            .await;
        assert!(matches!(r, Err(TransportError::Protocol(_))), "{r:?}");
        drop(t);
        server.await.unwrap();
    }
}
