//! The byte transports under HiveServer2's Thrift protocol: on a socket (plain TCP or TLS)
//! SASL PLAIN, SASL GSSAPI (Kerberos) or NOSASL; or HTTP (`http`).
//!
//! Source: Apache Thrift's `TSaslTransport`/`TSaslClientTransport` (as HiveServer2 uses them
//! with `hive.server2.authentication` NONE, LDAP, CUSTOM, PAM: mechanism PLAIN; KERBEROS:
//! mechanism GSSAPI), RFC 4616 (PLAIN) and RFC 4752 (GSSAPI, see `sasl_gssapi`). Negotiation
//! messages are a status byte (START=1, OK=2, BAD=3, ERROR=4, COMPLETE=5), a 4-byte big-endian
//! length and the payload. For PLAIN the client sends START with the mechanism name, then its
//! initial response `authzid \0 authcid \0 password` with status COMPLETE (PLAIN finishes in
//! one step); the server answers COMPLETE, or BAD/ERROR with a message. Afterwards every Thrift
//! message is sent as a frame: 4-byte big-endian length and the bytes, or with a GSSAPI
//! security layer (`auth-int`, `auth-conf`) the length and one wrapped message. With NOSASL
//! the Thrift messages go over the socket as they are, unframed.

use std::sync::Arc;

use futures::FutureExt as _;
use hive_smallfiles_core::kerberos::{ClientContext, Kerberos, KerberosError, Mech, ServiceName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http::HttpLink;
use super::protocol::{DecodeError, MAX_LENGTH};
use super::sasl_gssapi::{self, Qop};
use super::tls;

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
    /// SASL negotiation (or HTTP authentication) was refused.
    Auth(String),
    /// The peer sent something the protocol does not allow.
    Protocol(String),
    /// The TLS handshake failed (untrusted or mismatched certificate, no TLS on the server).
    Tls(String),
    /// The Kerberos login or context failed.
    Kerberos {
        /// What failed, naming the cause.
        message: String,
        /// Whether trying again later may succeed (e.g. the KDC was unreachable).
        retryable: bool,
    },
}

impl TransportError {
    /// A Kerberos failure while doing `what`.
    pub(crate) fn kerberos(what: &str, e: &KerberosError) -> Self {
        Self::Kerberos {
            message: format!("{what}: {e}"),
            retryable: e.is_retryable(),
        }
    }
}

/// A byte stream to the server: plain TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Connects by TCP and, with a TLS configuration, runs the handshake (verifying the server's
/// certificate for `host`).
pub(crate) async fn connect_stream(
    host: &str,
    port: u16,
    tls_config: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Box<dyn Io>, TransportError> {
    let stream = TcpStream::connect((host, port)).await.map_err(io_err)?;
    stream.set_nodelay(true).map_err(io_err)?;
    match tls_config {
        None => Ok(Box::new(stream)),
        Some(config) => Ok(Box::new(
            tls::handshake(config, host, stream)
                .await
                .map_err(TransportError::Tls)?,
        )),
    }
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

fn io_err(e: std::io::Error) -> TransportError {
    TransportError::Io(e.to_string())
}

/// How Thrift messages travel on a socket.
enum Layer {
    /// NOSASL: as they are.
    Unframed,
    /// SASL without a security layer: length-prefixed frames.
    Framed,
    /// SASL GSSAPI with `auth-int`/`auth-conf`: each frame holds one wrapped message.
    Wrapped {
        context: Box<ClientContext>,
        encrypt: bool,
    },
}

enum Link {
    Socket { io: Box<dyn Io>, layer: Layer },
    Http(Box<HttpLink>),
}

/// A connected transport.
pub(crate) struct Transport {
    link: Link,
    /// Received bytes not yet consumed by a decoded message.
    pending: Vec<u8>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.link {
            Link::Socket {
                layer: Layer::Unframed,
                ..
            } => "unframed",
            Link::Socket {
                layer: Layer::Framed,
                ..
            } => "sasl",
            Link::Socket {
                layer: Layer::Wrapped { .. },
                ..
            } => "sasl-wrapped",
            Link::Http(_) => "http",
        };
        f.debug_struct("Transport")
            .field("kind", &kind)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Transport {
    /// Connects a socket (TCP, or TLS with a configuration; call [`Transport::sasl_plain`] or
    /// [`Transport::sasl_gssapi`] next for SASL).
    pub(crate) async fn connect(
        host: &str,
        port: u16,
        tls_config: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Self, TransportError> {
        let io = connect_stream(host, port, tls_config).await?;
        Ok(Self {
            link: Link::Socket {
                io,
                layer: Layer::Unframed,
            },
            pending: Vec::new(),
        })
    }

    /// The HTTP transport (connects on its first request).
    pub(crate) fn http(link: HttpLink) -> Self {
        Self {
            link: Link::Http(Box::new(link)),
            pending: Vec::new(),
        }
    }

    /// How many times the HTTP transport sent credentials (a Negotiate or Basic header);
    /// `None` on a socket.
    pub(crate) fn http_authentications(&self) -> Option<u64> {
        match &self.link {
            Link::Http(h) => Some(h.authentications()),
            Link::Socket { .. } => None,
        }
    }

    fn socket(&mut self) -> Result<(&mut Box<dyn Io>, &mut Layer), TransportError> {
        match &mut self.link {
            Link::Socket { io, layer } => Ok((io, layer)),
            Link::Http(_) => Err(TransportError::Protocol(
                "SASL negotiation on the HTTP transport".into(),
            )),
        }
    }

    /// Reads one SASL negotiation message; BAD and ERROR become [`TransportError::Auth`].
    async fn read_sasl_message(&mut self) -> Result<(u8, Vec<u8>), TransportError> {
        let (io, _) = self.socket()?;
        let mut head = [0u8; 5];
        io.read_exact(&mut head).await.map_err(|e| {
            TransportError::Io(format!(
                "connection closed during SASL negotiation ({e}); does the server use SASL \
                 (and TLS only when tls = true)?"
            ))
        })?;
        // A TLS record (handshake 0x16 or alert 0x15, version 3.x): the port wants TLS.
        if matches!(head[0], 0x15 | 0x16) && head[1] == 3 {
            return Err(TransportError::Tls(
                "the server answered with TLS: it uses SSL (hive.server2.use.SSL); set \
                 tls = true"
                    .into(),
            ));
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > 1 << 20 {
            return Err(TransportError::Protocol(format!(
                "SASL message of {len} bytes (status {}); is this a HiveServer2 binary endpoint?",
                head[0]
            )));
        }
        let mut payload = vec![0u8; len];
        io.read_exact(&mut payload).await.map_err(io_err)?;
        match head[0] {
            sasl_status::OK | sasl_status::COMPLETE => Ok((head[0], payload)),
            sasl_status::BAD | sasl_status::ERROR => Err(TransportError::Auth(
                String::from_utf8_lossy(&payload).into_owned(),
            )),
            other => Err(TransportError::Protocol(format!(
                "unexpected SASL status {other}"
            ))),
        }
    }

    async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        let (io, _) = self.socket()?;
        io.write_all(bytes).await.map_err(io_err)?;
        io.flush().await.map_err(io_err)
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
        self.write_raw(&out).await?;
        loop {
            match self.read_sasl_message().await? {
                (sasl_status::COMPLETE, _) => break,
                // PLAIN has no challenge; an OK with an empty challenge gets an empty answer.
                _ => {
                    self.write_raw(&sasl_message(sasl_status::COMPLETE, &[]))
                        .await?;
                }
            }
        }
        *self.socket()?.1 = Layer::Framed;
        Ok(())
    }

    /// Runs SASL GSSAPI negotiation (RFC 4752) for the service principal `service` with the
    /// Kerberos login `login`, asking for the security layer `qop`; afterwards messages are
    /// framed, and wrapped with `auth-int`/`auth-conf`.
    pub(crate) async fn sasl_gssapi(
        &mut self,
        login: &Kerberos,
        service: &ServiceName,
        qop: Qop,
    ) -> Result<(), TransportError> {
        let service_text = service.to_string();
        let (mut context, first) = login.init_context(service, Mech::Krb5).await.map_err(|e| {
            TransportError::kerberos(&format!("Kerberos service ticket for {service_text}"), &e)
        })?;
        let mut out = sasl_message(sasl_status::START, b"GSSAPI");
        out.extend_from_slice(&sasl_message(sasl_status::OK, &first));
        self.write_raw(&out).await?;
        let chosen = loop {
            let (status, payload) = self.read_sasl_message().await.map_err(|e| match e {
                // Hive's SASL server without Kerberos (authentication NONE, LDAP, …) knows
                // only PLAIN: "Unsupported mechanism type GSSAPI".
                TransportError::Auth(m) if m.contains("Unsupported mechanism") => {
                    TransportError::Auth(format!(
                        "the server does not offer Kerberos (SASL GSSAPI): {m} (is its \
                         hive.server2.authentication KERBEROS, or does it want auth = \"plain\"?)"
                    ))
                }
                TransportError::Auth(m) => TransportError::Auth(format!(
                    "the server refused the Kerberos authentication for {service_text}: {m} \
                     (is kerberos_principal the server's principal, \
                     hive.server2.authentication.kerberos.principal?)"
                )),
                other => other,
            })?;
            if !context.is_complete() {
                let reply = context.step(&payload).map_err(|e| {
                    TransportError::kerberos(&format!("Kerberos context with {service_text}"), &e)
                })?;
                if status == sasl_status::COMPLETE {
                    return Err(TransportError::Protocol(
                        "the server ended the SASL GSSAPI negotiation before the Kerberos \
                         context was established"
                            .into(),
                    ));
                }
                self.write_raw(&sasl_message(sasl_status::OK, &reply.unwrap_or_default()))
                    .await?;
                continue;
            }
            // The context is established: this is the security-layer challenge.
            let decided = context
                .unwrap(&payload)
                .map_err(|e| format!("unwrapping the server's security-layer challenge: {e}"))
                .and_then(|plain| sasl_gssapi::decode_challenge(&plain))
                .and_then(|challenge| sasl_gssapi::choose(challenge, qop));
            let chosen = match decided {
                Ok(q) => q,
                Err(m) => {
                    let _ = self
                        .write_raw(&sasl_message(sasl_status::BAD, m.as_bytes()))
                        .await;
                    return Err(TransportError::Auth(m));
                }
            };
            let response = context
                .wrap(false, &sasl_gssapi::encode_response(chosen, ""))
                .map_err(|e| {
                    TransportError::kerberos("wrapping the security-layer response", &e)
                })?;
            self.write_raw(&sasl_message(sasl_status::COMPLETE, &response))
                .await?;
            if status == sasl_status::OK {
                let (last, _) = self.read_sasl_message().await?;
                if last != sasl_status::COMPLETE {
                    return Err(TransportError::Protocol(format!(
                        "expected SASL COMPLETE after the security-layer response, got status {last}"
                    )));
                }
            }
            break chosen;
        };
        let layer = if chosen.wraps() {
            Layer::Wrapped {
                context: Box::new(context),
                encrypt: chosen.encrypts(),
            }
        } else {
            Layer::Framed
        };
        *self.socket()?.1 = layer;
        Ok(())
    }

    /// Sends one Thrift message (on HTTP: the whole request, whose reply is then received).
    pub(crate) async fn send(&mut self, message: &[u8]) -> Result<(), TransportError> {
        match &mut self.link {
            Link::Http(http) => {
                let body = http.post(message).await?;
                self.pending.clear();
                self.pending.extend_from_slice(&body);
                Ok(())
            }
            Link::Socket { io, layer } => {
                match layer {
                    Layer::Unframed => io.write_all(message).await.map_err(io_err)?,
                    Layer::Framed => io.write_all(&frame(message)).await.map_err(io_err)?,
                    Layer::Wrapped { context, encrypt } => {
                        let wrapped = context.wrap(*encrypt, message).map_err(|e| {
                            TransportError::kerberos("wrapping a message (SASL security layer)", &e)
                        })?;
                        io.write_all(&frame(&wrapped)).await.map_err(io_err)?;
                    }
                }
                io.flush().await.map_err(io_err)
            }
        }
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
        let (io, layer) = match &mut self.link {
            Link::Http(_) => {
                return Err(TransportError::Protocol(
                    "the HTTP reply ended in the middle of a Thrift message".into(),
                ));
            }
            Link::Socket { io, layer } => (io, layer),
        };
        if let Layer::Wrapped { context, .. } = layer {
            let mut len = [0u8; 4];
            io.read_exact(&mut len).await.map_err(io_err)?;
            let len = frame_length(len, 0)?;
            let mut wrapped = vec![0u8; len];
            io.read_exact(&mut wrapped).await.map_err(io_err)?;
            let plain = context.unwrap(&wrapped).map_err(|e| {
                TransportError::kerberos("unwrapping a message (SASL security layer)", &e)
            })?;
            if self.pending.len() + plain.len() > MAX_FRAME {
                return Err(TransportError::Protocol(
                    "message exceeds the size limit".into(),
                ));
            }
            self.pending.extend_from_slice(&plain);
        } else if matches!(layer, Layer::Framed) {
            let mut len = [0u8; 4];
            io.read_exact(&mut len).await.map_err(io_err)?;
            let len = frame_length(len, self.pending.len())?;
            let start = self.pending.len();
            self.pending.resize(start + len, 0);
            io.read_exact(&mut self.pending[start..])
                .await
                .map_err(io_err)?;
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
            let n = io.read(&mut self.pending[filled..]).await.map_err(io_err)?;
            filled += n;
            if n > 0 {
                while filled < start + want {
                    // Polled once: what is buffered already, without waiting.
                    match io.read(&mut self.pending[filled..]).now_or_never() {
                        Some(Ok(0)) | None => break,
                        Some(Ok(n)) => filled += n,
                        Some(Err(e)) => return Err(io_err(e)),
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
        match &mut self.link {
            Link::Socket { io, .. } => {
                let _ = io.shutdown().await;
            }
            Link::Http(http) => http.close(),
        }
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
        let mut t = Transport::connect("127.0.0.1", port, None).await.unwrap();
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
        let mut t = Transport::connect("127.0.0.1", port, None).await.unwrap();
        match t.sasl_plain("u", "bad").await {
            Err(TransportError::Auth(m)) => assert_eq!(m, "Error validating the login"),
            other => panic!("{other:?}"),
        }
        let mut t = Transport::connect("127.0.0.1", port, None).await.unwrap();
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
