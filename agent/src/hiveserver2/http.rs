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

/// An HTTP endpoint with its connection, cookies and credentials.
pub(crate) struct HttpLink {
    host: String,
    port: u16,
    path: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    auth: HttpAuth,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Cookies the server set, by name, in the order first set.
    cookies: Vec<(String, String)>,
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

    fn cookie_header(&self) -> Option<HeaderValue> {
        if self.cookies.is_empty() {
            return None;
        }
        let text = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
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
        let mut with_credentials = self.cookies.is_empty();
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
                if let Some((name, value)) = value.to_str().ok().and_then(parse_set_cookie) {
                    store_cookie(&mut self.cookies, name, value);
                }
            }
            let status = response.status();
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

/// The name and value of a `Set-Cookie` header; `None` for a cookie being deleted
/// (`Max-Age=0` or an empty value). Attributes are not kept: the cookies go back only to the
/// server that set them, on the path of the endpoint.
pub(crate) fn parse_set_cookie(header: &str) -> Option<(&str, &str)> {
    let mut parts = header.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    // The value goes back as it came (quotes included, as browsers do).
    let (name, value) = (name.trim(), value.trim());
    let deleted = parts.any(|attr| {
        attr.split_once('=')
            .is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("max-age") && v.trim() == "0")
    });
    (!name.is_empty() && !value.is_empty() && !deleted).then_some((name, value))
}

fn store_cookie(cookies: &mut Vec<(String, String)>, name: &str, value: &str) {
    match cookies.iter_mut().find(|(n, _)| n == name) {
        Some(c) => value.clone_into(&mut c.1),
        None => cookies.push((name.to_owned(), value.to_owned())),
    }
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
            Some(("hive.server2.auth", "\"cu=hsf&rn=1\""))
        );
        assert_eq!(
            parse_set_cookie("JSESSIONID=abc"),
            Some(("JSESSIONID", "abc"))
        );
        assert_eq!(parse_set_cookie("a=b; Max-Age=0"), None);
        assert_eq!(parse_set_cookie("a=; Path=/"), None);
        assert_eq!(parse_set_cookie("garbage"), None);
        let mut jar = Vec::new();
        store_cookie(&mut jar, "a", "1");
        store_cookie(&mut jar, "b", "2");
        store_cookie(&mut jar, "a", "3");
        assert_eq!(
            jar,
            [
                ("a".to_owned(), "3".to_owned()),
                ("b".to_owned(), "2".to_owned())
            ]
        );
    }

    #[test]
    fn basic_credentials() {
        match HttpAuth::basic("hive", "pw") {
            HttpAuth::Basic(s) => assert_eq!(s.expose(), "Basic aGl2ZTpwdw=="),
            _ => unreachable!(),
        }
    }
}
