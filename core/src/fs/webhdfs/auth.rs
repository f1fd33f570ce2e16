//! SPNEGO for the NameNode requests (`auth = "kerberos"`), as Hadoop's `AuthenticatedURL` /
//! `KerberosAuthenticator` do against the NameNode's `AuthenticationFilter` (hadoop-auth,
//! "Hadoop Auth, Java HTTP SPNEGO": <https://hadoop.apache.org/docs/current/hadoop-auth/index.html>):
//!
//! * a request goes out with the `hadoop.auth` cookie this client holds for that NameNode, or
//!   with none;
//! * a 401 carrying `WWW-Authenticate: Negotiate` (no cookie, or an expired one) is answered by
//!   the same request with `Authorization: Negotiate <token>` for the service `HTTP@<host of
//!   that NameNode>` (each NameNode of an HA pair has its own service principal);
//! * the signed `hadoop.auth` cookie the filter sets ("Subsequent HTTP client requests
//!   presenting the signed HTTP Cookie have access to the protected resources until the HTTP
//!   Cookie expires") is kept per NameNode and sent with the next requests, so that not every
//!   request needs a new service ticket; it is dropped once its `e=` expiry has passed or the
//!   NameNode answers 401 again.
//!
//! A second 401 after the `Negotiate` header is a rejection (wrong principal, a service
//! keytab that does not match, an unauthorized user): a non-retryable error naming the
//! principal and the service. Kerberos failures (KDC unreachable, bad keytab) keep the cause
//! the login gives.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::Method;
use reqwest::header::{
    AUTHORIZATION, COOKIE, HeaderMap, HeaderValue, SET_COOKIE, WWW_AUTHENTICATE,
};

use super::*;
use crate::kerberos::{Kerberos, KerberosError};

/// Name of hadoop-auth's authentication cookie (`AuthenticatedURL.AUTH_COOKIE`).
pub(super) const AUTH_COOKIE: &str = "hadoop.auth";

/// Cookies whose `e=` expiry is closer than this are not sent (the NameNode would answer 401;
/// small, as `token.validity` may be short).
const COOKIE_EXPIRY_MARGIN_MS: i64 = 1_000;

/// The Kerberos side of one cluster's client: the login, the per-NameNode service hosts and
/// `hadoop.auth` cookies, the delegation tokens (when enabled).
pub(super) struct Spnego {
    pub(super) kerberos: Kerberos,
    /// Host of each NameNode's URL, lowercased: the service is `HTTP@<host>`.
    hosts: Vec<String>,
    /// The cookie each NameNode set last.
    cookies: CookieJar,
    /// One handshake at a time per NameNode: requests that meet a 401 together wait for the
    /// first one's cookie instead of each asking for a service ticket.
    negotiating: Vec<tokio::sync::Mutex<()>>,
    /// SPNEGO handshakes made (an `Authorization: Negotiate` header sent).
    handshakes: AtomicU64,
    /// Delegation tokens obtained over SPNEGO (`delegation_tokens = true`).
    pub(super) tokens: Option<super::token::DelegationTokens>,
}

/// A `hadoop.auth` cookie as set by the NameNode.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct AuthCookie {
    /// The value as set (quoted as hadoop-auth quotes it), sent back unchanged.
    pub(super) value: String,
    /// `e=` of the signed token (ms since the epoch), when readable.
    pub(super) expires_ms: Option<i64>,
}

impl fmt::Debug for AuthCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCookie")
            .field("value", &"***")
            .field("expires_ms", &self.expires_ms)
            .finish()
    }
}

impl Spnego {
    pub(super) fn new(cfg: &SpnegoConfig, namenodes: &[url::Url]) -> Self {
        Self {
            kerberos: Kerberos::shared(&cfg.kerberos),
            hosts: namenodes.iter().map(service_host).collect(),
            cookies: CookieJar::new(namenodes.len()),
            negotiating: namenodes
                .iter()
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            handshakes: AtomicU64::new(0),
            tokens: cfg
                .delegation_tokens
                .then(super::token::DelegationTokens::default),
        }
    }

    /// SPNEGO handshakes made so far.
    pub(super) fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }

    /// `Negotiate <token>` for NameNode `i`'s service `HTTP@<host>`.
    async fn negotiate(&self, i: usize) -> Result<String, KerberosError> {
        let value = self.kerberos.negotiate_header(&self.hosts[i]).await?;
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        Ok(value)
    }
}

/// The `hadoop.auth` cookie each NameNode set last. Holds credentials: never printed.
pub(super) struct CookieJar(Vec<Mutex<Option<AuthCookie>>>);

impl CookieJar {
    pub(super) fn new(namenodes: usize) -> Self {
        Self((0..namenodes).map(|_| Mutex::new(None)).collect())
    }

    /// The `Cookie` header for NameNode `i`, when a cookie that has not expired is held.
    fn cookie_header(&self, i: usize, now_ms: i64) -> Option<HeaderValue> {
        let mut slot = self.0[i].lock().unwrap_or_else(|e| e.into_inner());
        let cookie = slot.as_ref()?;
        if cookie
            .expires_ms
            .is_some_and(|e| e <= now_ms + COOKIE_EXPIRY_MARGIN_MS)
        {
            *slot = None;
            return None;
        }
        HeaderValue::from_str(&format!("{AUTH_COOKIE}={}", cookie.value))
            .ok()
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
    }

    fn forget(&self, i: usize) {
        *self.0[i].lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Keeps the `hadoop.auth` cookie of an answer (an empty one clears it).
    fn store(&self, i: usize, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let Some(cookie) = value.to_str().ok().and_then(parse_set_cookie) else {
                continue;
            };
            let mut slot = self.0[i].lock().unwrap_or_else(|e| e.into_inner());
            *slot = (!cookie.value.is_empty() && cookie.value != "\"\"").then_some(cookie);
        }
    }
}

/// A `Cookie` header map (empty without a cookie).
fn cookie_headers(cookie: Option<HeaderValue>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(cookie) = cookie {
        headers.insert(COOKIE, cookie);
    }
    headers
}

/// `HTTP@<host>`'s host for a NameNode URL: its host, lowercased (as Hadoop's
/// `KerberosUtil.getServicePrincipal("HTTP", host)` lowercases it).
pub(super) fn service_host(url: &url::Url) -> String {
    url.host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// The `hadoop.auth` cookie of one `Set-Cookie` header, if it is that cookie.
pub(super) fn parse_set_cookie(header: &str) -> Option<AuthCookie> {
    let first = header.split(';').next()?.trim();
    let (name, value) = first.split_once('=')?;
    if name.trim() != AUTH_COOKIE {
        return None;
    }
    let value = value.trim().to_owned();
    let expires_ms = token_expiry(&value);
    Some(AuthCookie { value, expires_ms })
}

/// `e=` of a hadoop-auth token (`u=<user>&p=<principal>&t=<type>&e=<expiry ms>&s=<signature>`).
pub(super) fn token_expiry(value: &str) -> Option<i64> {
    value
        .trim_matches('"')
        .split('&')
        .find_map(|kv| kv.strip_prefix("e="))
        .and_then(|e| e.parse().ok())
}

/// Whether a 401 answer asks for SPNEGO.
pub(super) fn offers_negotiate(headers: &HeaderMap) -> bool {
    headers.get_all(WWW_AUTHENTICATE).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.trim()
                .get(..9)
                .is_some_and(|s| s.eq_ignore_ascii_case("negotiate"))
        })
    })
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A Kerberos failure as an [`FsError`] naming the step and the cause; retryable when
/// waiting may help (KDC unreachable), never a reason to fail over (every NameNode needs the
/// same login).
pub(super) fn kerberos_error(
    op: &'static str,
    path: &str,
    what: &str,
    e: &KerberosError,
) -> FsError {
    FsError::Authentication {
        op,
        path: path.to_owned(),
        message: format!("Kerberos ({what}): {e}"),
        retryable: e.is_retryable(),
    }
}

impl WebHdfs {
    /// One request to NameNode `i` authenticated with the `hadoop.auth` cookie or SPNEGO
    /// (see the module documentation). Token operations and, with `delegation_tokens =
    /// false`, every NameNode request go this way.
    pub(super) async fn send_spnego(
        &self,
        spnego: &Spnego,
        i: usize,
        op: &'static str,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Reply, FsError> {
        let sent = spnego.cookies.cookie_header(i, now_ms());
        let mut reply = self
            .exchange(
                i,
                op,
                method.clone(),
                path,
                params,
                cookie_headers(sent.clone()),
            )
            .await?;
        if reply.status == StatusCode::UNAUTHORIZED && offers_negotiate(&reply.headers) {
            let _one_at_a_time = spnego.negotiating[i].lock().await;
            let current = spnego.cookies.cookie_header(i, now_ms());
            if current.is_some() && current != sent {
                // Another request authenticated meanwhile: its cookie will do.
                reply = self
                    .exchange(i, op, method.clone(), path, params, cookie_headers(current))
                    .await?;
                if reply.status != StatusCode::UNAUTHORIZED {
                    spnego.cookies.store(i, &reply.headers);
                    return checked(op, path, reply);
                }
            }
            spnego.cookies.forget(i);
            let host = &spnego.hosts[i];
            let value = spnego
                .negotiate(i)
                .await
                .map_err(|e| kerberos_error(op, path, &format!("SPNEGO for HTTP@{host}"), &e))?;
            self.count_auth("spnego");
            let Ok(mut value) = HeaderValue::from_str(&value) else {
                return Err(FsError::PermissionDenied {
                    path: path.to_owned(),
                    message: "the SPNEGO token is not a valid header value".to_owned(),
                });
            };
            value.set_sensitive(true);
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value);
            reply = self.exchange(i, op, method, path, params, headers).await?;
            if reply.status == StatusCode::UNAUTHORIZED {
                let principal = spnego
                    .kerberos
                    .principal()
                    .unwrap_or_else(|| "(not logged in)".to_owned());
                return Err(FsError::PermissionDenied {
                    path: path.to_owned(),
                    message: format!(
                        "NameNode {} rejected the SPNEGO authentication of {principal} for \
                         service HTTP@{host} (HTTP 401: {}); check that the principal is \
                         allowed and that the NameNode's HTTP principal matches its host",
                        self.namenodes[i].label,
                        snippet(&reply.body)
                    ),
                });
            }
            // Stored before the next waiting request looks for it.
            spnego.cookies.store(i, &reply.headers);
            return checked(op, path, reply);
        }
        if reply.status == StatusCode::UNAUTHORIZED {
            // A server that asks for something else than SPNEGO (Basic from a gateway, NTLM,
            // nothing at all): trying again cannot help.
            return Err(FsError::PermissionDenied {
                path: path.to_owned(),
                message: format!(
                    "NameNode {} answered HTTP 401 asking for {} authentication, not SPNEGO \
                     (Negotiate), which auth = \"kerberos\" speaks; check that the URL is \
                     the NameNode's own HTTP address and that it runs with Kerberos",
                    self.namenodes[i].label,
                    offered_schemes(&reply.headers)
                ),
            });
        }
        spnego.cookies.store(i, &reply.headers);
        checked(op, path, reply)
    }
}

/// The authentication schemes a 401 answer offers, for the error message: `Basic, NTLM`, or
/// `no` when it names none.
pub(super) fn offered_schemes(headers: &HeaderMap) -> String {
    let schemes: Vec<String> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_whitespace().next())
        .map(|s| s.chars().take(32).collect())
        .collect();
    if schemes.is_empty() {
        "no".to_owned()
    } else {
        schemes.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_hadoop_auth_cookie_and_its_expiry() {
        let c = parse_set_cookie(
            "hadoop.auth=\"u=hsf&p=hsf/localhost@HSF.TEST&t=kerberos&e=1700000000123&s=abc=\"; \
             Path=/; Expires=Tue, 14 Nov 2023 22:13:20 GMT; HttpOnly",
        )
        .unwrap();
        assert_eq!(c.expires_ms, Some(1_700_000_000_123));
        assert!(c.value.starts_with("\"u=hsf&") && c.value.ends_with("s=abc=\""));
        assert!(parse_set_cookie("JSESSIONID=1; Path=/").is_none());
        assert_eq!(
            parse_set_cookie("hadoop.auth=; Max-Age=0").unwrap().value,
            ""
        );
        assert!(!format!("{c:?}").contains("hsf/localhost"));
    }

    #[test]
    fn expired_cookies_are_not_sent() {
        let nn = url::Url::parse("http://NN1.example.com:9870").unwrap();
        assert_eq!(service_host(&nn), "nn1.example.com");
        let s = CookieJar::new(2);
        let mut h = HeaderMap::new();
        h.insert(
            SET_COOKIE,
            HeaderValue::from_static("hadoop.auth=\"u=a&e=10000&s=x\"; Path=/"),
        );
        s.store(0, &h);
        assert!(s.cookie_header(1, 1000).is_none(), "per NameNode");
        assert!(s.cookie_header(0, 1000).is_some());
        assert!(
            s.cookie_header(0, 9000).is_none(),
            "within the margin of e="
        );
        assert!(s.cookie_header(0, 1000).is_none(), "forgotten once expired");
    }

    #[test]
    fn negotiate_offers_are_recognised() {
        let mut h = HeaderMap::new();
        assert!(!offers_negotiate(&h));
        h.append(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=x"));
        assert!(!offers_negotiate(&h));
        assert_eq!(offered_schemes(&h), "Basic");
        h.append(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate"));
        assert!(offers_negotiate(&h));
        assert_eq!(offered_schemes(&HeaderMap::new()), "no");
    }
}
