//! HiveServer2's HTTP transport (`hive.server2.transport.mode=http`): each Thrift message is
//! the body of an HTTP POST to `/<http_path>` (`Content-Type: application/x-thrift`, Thrift's
//! `THttpClient`) and the reply is the response body. The same mechanisms serve Apache Knox and
//! load balancers in front of HiveServer2, and Impala's HS2 HTTP endpoint (port 28000).
//!
//! Authentication, as Hive's JDBC driver does it: `Authorization: Negotiate <token>` (a fresh
//! Kerberos token for the server's principal) with Kerberos, `Authorization: Basic` with the
//! user and password otherwise (servers without authentication take the user from it). The
//! server answers a successful authentication with a login cookie (`hive.server2.auth`; Knox
//! and load balancers add their own): the client keeps every cookie the server sets and sends
//! them instead of credentials; when the server no longer accepts them (401) the client drops
//! them and authenticates again once. The header is formed `Negotiate <token>` (Hive 2.3's
//! JDBC client sends `Negotiate : <token>`, which newer servers reject).
//!
//! One kept-alive connection (TCP, or TLS with the same verification as the binary transport);
//! a connection the server closed while idle is replaced before the next request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use hive_smallfiles_core::kerberos::{Kerberos, Mech, ServiceName};
use hive_smallfiles_core::secret::Secret;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HeaderValue, SET_COOKIE};
use hyper_util::rt::TokioIo;

use super::transport::{MAX_FRAME, TransportError, connect_stream};

/// How requests authenticate.
pub(crate) enum HttpAuth {
    /// No credentials (NOSASL servers).
    None,
    /// `Authorization: Basic` (user and password; servers without authentication).
    Basic(Secret),
    /// `Authorization: Negotiate` with a Kerberos token for the principal `principal`
    /// (a `hive/_HOST@REALM` pattern, `_HOST` replaced by the connect host).
    Kerberos { login: Kerberos, principal: String },
}

impl HttpAuth {
    /// Basic credentials of `user` and `password`.
    pub(crate) fn basic(user: &str, password: &str) -> Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self::Basic(Secret::new(format!("Basic {token}")))
    }
}

/// One cookie the server set: name, value as sent, and when it expires (`Max-Age`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cookie {
    name: String,
    value: String,
    expires: Option<Instant>,
}

/// An HTTP endpoint with its connection, cookies and credentials.
pub(crate) struct HttpLink {
    host: String,
    port: u16,
    path: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    auth: HttpAuth,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Cookies the server set.
    cookies: Vec<Cookie>,
    authentications: u64,
}

impl HttpLink {
    /// An endpoint at `http(s)://host:port/path` (connects on the first request).
    pub(crate) fn new(
        host: &str,
        port: u16,
        path: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        auth: HttpAuth,
    ) -> Self {
        Self {
            host: host.to_owned(),
            port,
            path: format!("/{}", path.trim_start_matches('/')),
            tls,
            auth,
            sender: None,
            cookies: Vec::new(),
            authentications: 0,
        }
    }

    /// How many requests carried credentials.
    pub(crate) fn authentications(&self) -> u64 {
        self.authentications
    }

    /// Drops the connection.
    pub(crate) fn close(&mut self) {
        self.sender = None;
    }

    async fn ready_sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, TransportError> {
        if let Some(s) = &mut self.sender {
            // A connection the server closed while idle fails here, before anything is sent.
            if s.is_closed() || s.ready().await.is_err() {
                self.sender = None;
            }
        }
        if self.sender.is_none() {
            let io = connect_stream(&self.host, self.port, self.tls.as_ref()).await?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(|e| TransportError::Io(format!("HTTP connection: {e}")))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| TransportError::Io("no HTTP connection".into()))
    }

    /// The credentials header of one request.
    async fn credentials(&self) -> Result<Option<HeaderValue>, TransportError> {
        let text = match &self.auth {
            HttpAuth::None => return Ok(None),
            HttpAuth::Basic(secret) => secret.expose().to_owned(),
            HttpAuth::Kerberos { login, principal } => {
                let service = ServiceName::from_pattern(principal, &self.host).map_err(|e| {
                    TransportError::kerberos(&format!("kerberos_principal {principal:?}"), &e)
                })?;
                let (_context, token) =
                    login
                        .init_context(&service, Mech::Spnego)
                        .await
                        .map_err(|e| {
                            TransportError::kerberos(
                                &format!(
                                    "Kerberos service ticket for {principal} on {}",
                                    self.host
                                ),
                                &e,
                            )
                        })?;
                format!(
                    "Negotiate {}",
                    base64::engine::general_purpose::STANDARD.encode(token)
                )
            }
        };
        let mut value = HeaderValue::from_str(&text)
            .map_err(|_| TransportError::Protocol("credentials not valid in a header".into()))?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    fn cookie_header(&mut self) -> Option<HeaderValue> {
        let now = Instant::now();
        self.cookies.retain(|c| c.expires.is_none_or(|t| t > now));
        if self.cookies.is_empty() {
            return None;
        }
        let text = self
            .cookies
            .iter()
            .map(|c| format!("{}={}", c.name, c.value))
            .collect::<Vec<_>>()
            .join("; ");
        HeaderValue::from_str(&text).ok().map(|mut v| {
            v.set_sensitive(true);
            v
        })
    }

    /// POSTs one Thrift message and returns the reply body.
    pub(crate) async fn post(&mut self, message: &[u8]) -> Result<Vec<u8>, TransportError> {
        let body = Bytes::copy_from_slice(message);
        let mut with_credentials = self.cookie_header().is_none();
        loop {
            let credentials = if with_credentials {
                self.credentials().await?
            } else {
                None
            };
            let mut request = hyper::Request::post(self.path.as_str())
                .header(hyper::header::HOST, format!("{}:{}", self.host, self.port))
                .header(CONTENT_TYPE, "application/x-thrift")
                .header(hyper::header::ACCEPT, "application/x-thrift")
                .header(
                    hyper::header::USER_AGENT,
                    concat!("hive-smallfiles/", env!("CARGO_PKG_VERSION")),
                );
            if let Some(c) = credentials.clone() {
                request = request.header(AUTHORIZATION, c);
            }
            if let Some(c) = self.cookie_header() {
                request = request.header(COOKIE, c);
            }
            let request = request
                .body(Full::new(body.clone()))
                .map_err(|e| TransportError::Protocol(format!("HTTP request: {e}")))?;
            if credentials.is_some() {
                self.authentications += 1;
            }
            let sender = self.ready_sender().await?;
            let response = sender.send_request(request).await.map_err(|e| {
                self.sender = None;
                TransportError::Io(format!("HTTP request to {}: {e}", self.host))
            })?;
            for value in response.headers().get_all(SET_COOKIE) {
                if let Ok(header) = value.to_str() {
                    store_cookie(&mut self.cookies, header, Instant::now());
                }
            }
            let status = response.status();
            let offered = offered_schemes(response.headers());
            let bytes = Limited::new(response.into_body(), MAX_FRAME)
                .collect()
                .await
                .map_err(|e| {
                    self.sender = None;
                    TransportError::Io(format!("HTTP reply from {}: {e}", self.host))
                })?
                .to_bytes();
            if status.is_success() {
                return Ok(bytes.to_vec());
            }
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                .trim()
                .to_owned();
            if status == hyper::StatusCode::UNAUTHORIZED {
                if !with_credentials {
                    // The login cookie expired (or the server restarted): authenticate again.
                    self.cookies.clear();
                    with_credentials = true;
                    continue;
                }
                let hint = match &self.auth {
                    HttpAuth::Kerberos { .. }
                        if !offered.iter().any(|o| o.eq_ignore_ascii_case("negotiate")) =>
                    {
                        format!(
                            " (the server asks for {} authentication, not Kerberos \
                             (Negotiate): is this endpoint Kerberized, or does it want \
                             auth = \"plain\"?)",
                            if offered.is_empty() {
                                "no".to_owned()
                            } else {
                                offered.join(", ")
                            }
                        )
                    }
                    HttpAuth::Kerberos { principal, .. } => format!(
                        " (the server refused the Kerberos token for {principal}: is \
                         kerberos_principal the server's principal?)"
                    ),
                    HttpAuth::Basic(_) => " (user or password refused)".to_owned(),
                    HttpAuth::None => " (the server wants credentials: set auth)".to_owned(),
                };
                return Err(TransportError::Auth(format!(
                    "HTTP 401 from {}{}{hint}: {text}",
                    self.host, self.path
                )));
            }
            return Err(TransportError::Protocol(format!(
                "HTTP {status} from {}{} (is http_path right, and is this HiveServer2's HTTP \
                 endpoint?): {text}",
                self.host, self.path
            )));
        }
    }
}

/// The name, value and `Max-Age` (seconds) of a `Set-Cookie` header. Other attributes are not
/// kept: the cookies go back only to the server that set them, on the endpoint's path.
pub(crate) fn parse_set_cookie(header: &str) -> Option<(&str, &str, Option<u64>)> {
    let mut parts = header.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    // The value goes back as it came (quotes included, as browsers do).
    let (name, value) = (name.trim(), value.trim());
    let max_age = parts.find_map(|attr| {
        attr.split_once('=')
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("max-age"))
            // A negative or unparsable age deletes the cookie (RFC 6265 section 5.2.2).
            .map(|(_, v)| v.trim().parse::<u64>().unwrap_or(0))
    });
    (!name.is_empty()).then_some((name, value, max_age))
}

/// Keeps, replaces or (empty value, `Max-Age=0`) deletes the cookie of a `Set-Cookie` header.
fn store_cookie(cookies: &mut Vec<Cookie>, header: &str, now: Instant) {
    let Some((name, value, max_age)) = parse_set_cookie(header) else {
        return;
    };
    cookies.retain(|c| c.name != name);
    if value.is_empty() || max_age == Some(0) {
        return;
    }
    cookies.push(Cookie {
        name: name.to_owned(),
        value: value.to_owned(),
        expires: max_age.map(|s| now + Duration::from_secs(s.min(10 * 365 * 86400))),
    });
}

/// The schemes a 401 answer's `WWW-Authenticate` headers offer (`Basic`, `Negotiate`, …).
fn offered_schemes(headers: &hyper::HeaderMap) -> Vec<String> {
    headers
        .get_all(hyper::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_whitespace().next())
        .map(|s| s.chars().take(32).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_headers() {
        assert_eq!(
            parse_set_cookie(
                "hive.server2.auth=\"cu=hsf&rn=1\"; Version=1; Max-Age=86400; Expires=x; HttpOnly"
            ),
            Some(("hive.server2.auth", "\"cu=hsf&rn=1\"", Some(86400)))
        );
        assert_eq!(
            parse_set_cookie("JSESSIONID=abc"),
            Some(("JSESSIONID", "abc", None))
        );
        assert_eq!(
            parse_set_cookie("a=b; max-age=-1"),
            Some(("a", "b", Some(0)))
        );
        assert_eq!(parse_set_cookie("garbage"), None);
        let t0 = Instant::now();
        let mut jar = Vec::new();
        store_cookie(&mut jar, "a=1", t0);
        store_cookie(&mut jar, "b=2; Max-Age=10", t0);
        store_cookie(&mut jar, "a=3", t0);
        let names: Vec<(&str, &str)> = jar
            .iter()
            .map(|c| (c.name.as_str(), c.value.as_str()))
            .collect();
        assert_eq!(names, [("b", "2"), ("a", "3")]);
        assert_eq!(jar[0].expires, Some(t0 + Duration::from_secs(10)));
        store_cookie(&mut jar, "b=x; Max-Age=0", t0);
        store_cookie(&mut jar, "a=; Path=/", t0);
        assert!(jar.is_empty());
    }

    /// Reads one HTTP/1.1 request (headers and a Content-Length body) from `s`.
    async fn read_request(
        s: &mut tokio::net::TcpStream,
        buf: &mut Vec<u8>,
    ) -> Option<(String, Vec<u8>)> {
        use tokio::io::AsyncReadExt as _;
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    buf.drain(..end + 4 + len);
                    return Some((head, body));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A scripted server: the first request must carry Basic credentials and gets a login
    /// cookie; the next (with the cookie only) is refused with 401 as an expired login; the
    /// client authenticates again and gets a new cookie, which the last request carries.
    #[tokio::test]
    async fn cookies_replace_credentials_until_the_server_refuses_them() {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut heads = Vec::new();
            let replies = [
                (
                    "200 OK",
                    "Set-Cookie: hive.server2.auth=\"one\"; Max-Age=86400; HttpOnly\r\n",
                    "r1",
                ),
                ("401 Unauthorized", "", "cookie expired"),
                ("200 OK", "Set-Cookie: hive.server2.auth=two\r\n", "r2"),
                ("200 OK", "", "r3"),
            ];
            for (status, extra, body) in replies {
                let (head, got) = read_request(&mut s, &mut buf).await.unwrap();
                assert_eq!(got, b"thrift");
                assert!(head.starts_with("POST /cliservice HTTP/1.1"), "{head}");
                assert!(
                    head.contains("content-type: application/x-thrift"),
                    "{head}"
                );
                heads.push(head);
                let reply = format!(
                    "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(reply.as_bytes()).await.unwrap();
            }
            heads
        });
        let mut link = HttpLink::new(
            "127.0.0.1",
            port,
            "/cliservice",
            None,
            HttpAuth::basic("hsf", "pw"),
        );
        assert_eq!(link.post(b"thrift").await.unwrap(), b"r1");
        assert_eq!(link.post(b"thrift").await.unwrap(), b"r2");
        assert_eq!(link.post(b"thrift").await.unwrap(), b"r3");
        assert_eq!(link.authentications(), 2);
        let heads = server.await.unwrap();
        let basic = "authorization: Basic aHNmOnB3";
        let has = |i: usize, what: &str| heads[i].contains(what);
        assert!(has(0, basic) && !has(0, "cookie:"), "{}", heads[0]);
        assert!(
            has(1, "cookie: hive.server2.auth=\"one\"") && !has(1, basic),
            "{}",
            heads[1]
        );
        assert!(has(2, basic) && !has(2, "cookie:"), "{}", heads[2]);
        assert!(
            has(3, "cookie: hive.server2.auth=two") && !has(3, basic),
            "{}",
            heads[3]
        );
    }

    /// Refused credentials are an authentication error naming the endpoint; another status
    /// says the path may be wrong.
    #[tokio::test]
    async fn refusals_are_named() {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            for status in ["401 Unauthorized", "404 Not Found"] {
                read_request(&mut s, &mut buf).await.unwrap();
                let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 4\r\n\r\nnope");
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        let mut link = HttpLink::new("127.0.0.1", port, "x", None, HttpAuth::basic("u", "bad"));
        match link.post(b"m").await {
            Err(TransportError::Auth(m)) => {
                assert!(
                    m.contains("HTTP 401 from 127.0.0.1/x (user or password refused): nope"),
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
        match link.post(b"m").await {
            Err(TransportError::Protocol(m)) => {
                assert!(m.contains("404") && m.contains("http_path"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn basic_credentials() {
        match HttpAuth::basic("hive", "pw") {
            HttpAuth::Basic(s) => assert_eq!(s.expose(), "Basic aGl2ZTpwdw=="),
            _ => unreachable!(),
        }
    }
}
