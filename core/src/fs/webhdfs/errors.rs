//! Mapping WebHDFS answers onto [`FsError`]: JSON bodies, transport errors and
//! `RemoteException`s.

use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use super::wire::RemoteExceptionEnvelope;
use super::*;

pub(super) fn parse<T: DeserializeOwned>(
    op: &'static str,
    path: &str,
    body: &[u8],
) -> Result<T, FsError> {
    serde_json::from_slice(body).map_err(|e| invalid_body(op, path, &e, body))
}

/// A body that did not parse as the expected JSON: the parser's message and the body, both
/// cut. serde_json quotes offending strings whole ("invalid type: string \"…\""), so its
/// message is cut like the body.
pub(super) fn invalid_body(
    op: &'static str,
    path: &str,
    e: &serde_json::Error,
    body: &[u8],
) -> FsError {
    FsError::InvalidResponse {
        op,
        path: path.to_owned(),
        message: format!(
            "{} (body: {})",
            snippet(e.to_string().as_bytes()),
            snippet(body)
        ),
    }
}

/// A transport failure. The URL (which may carry the delegation token) is stripped.
pub(super) fn transport_error(op: &'static str, path: &str, e: reqwest::Error) -> FsError {
    let e = e.without_url();
    if let Some(message) = certificate_rejection(&e) {
        // Fails closed: no failover or retry can make an untrusted certificate trusted.
        return FsError::InvalidResponse {
            op,
            path: path.to_owned(),
            message,
        };
    }
    if e.is_timeout() && !e.is_connect() {
        return FsError::Timeout {
            op,
            path: path.to_owned(),
        };
    }
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    FsError::Connection {
        op,
        path: path.to_owned(),
        message,
    }
}

/// The TLS handshake rejected the server's certificate: what is wrong with it, in words.
fn certificate_rejection(e: &reqwest::Error) -> Option<String> {
    use rustls::CertificateError as C;
    let cert = find_certificate_error(e)?;
    let why = match cert {
        C::UnknownIssuer | C::BadSignature => {
            "is not signed by a trusted CA (storage.ca_file, or the system's roots)".to_owned()
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "does not name the host of the NameNode URL (use the name the certificate was \
             issued for)"
                .to_owned()
        }
        C::Expired | C::ExpiredContext { .. } => "has expired".to_owned(),
        C::NotValidYet | C::NotValidYetContext { .. } => "is not valid yet".to_owned(),
        C::Revoked => "is revoked".to_owned(),
        other => format!("was rejected ({other:?})"),
    };
    Some(format!(
        "TLS: the server's certificate {why}; the connection was refused"
    ))
}

/// The rustls certificate error somewhere in an error's chain (`io::Error`s nest it: their
/// `source` skips their payload, so payloads are looked into).
fn find_certificate_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::CertificateError> {
    if let Some(rustls::Error::InvalidCertificate(cert)) = e.downcast_ref::<rustls::Error>() {
        return Some(cert);
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        if let Some(found) = find_certificate_error(inner) {
            return Some(found);
        }
    }
    e.source().and_then(find_certificate_error)
}

/// Maps an error status and its body (`RemoteException` JSON, or anything else such as the
/// HTML page of an authentication filter) to an [`FsError`].
pub(super) fn remote_error(
    op: &'static str,
    path: &str,
    status: StatusCode,
    body: &[u8],
) -> FsError {
    let Ok(envelope) = serde_json::from_slice::<RemoteExceptionEnvelope>(body) else {
        if status == StatusCode::NOT_FOUND {
            return FsError::NotFound {
                path: path.to_owned(),
            };
        }
        return FsError::Remote {
            op,
            path: path.to_owned(),
            status: status.as_u16(),
            exception: status.canonical_reason().unwrap_or("").to_owned(),
            message: snippet(body),
        };
    };
    let rex = envelope.remote_exception;
    if rex.is("FileNotFoundException") || status == StatusCode::NOT_FOUND {
        return FsError::NotFound {
            path: path.to_owned(),
        };
    }
    if rex.is("FileAlreadyExistsException") {
        return FsError::AlreadyExists {
            path: path.to_owned(),
        };
    }
    if rex.is("AccessControlException") {
        return FsError::PermissionDenied {
            path: path.to_owned(),
            message: rex.message,
        };
    }
    let exception = if rex.exception.is_empty() {
        rex.java_class_name
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned()
    } else {
        rex.exception
    };
    FsError::Remote {
        op,
        path: path.to_owned(),
        status: status.as_u16(),
        exception,
        message: rex.message,
    }
}

/// The first characters of a body, whitespace collapsed, for error messages.
pub(super) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_SNIPPET_CHARS * 4)]);
    let mut out = String::with_capacity(ERROR_SNIPPET_CHARS);
    for (n, word) in text.split_whitespace().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() >= ERROR_SNIPPET_CHARS {
            break;
        }
    }
    if let Some((cut, _)) = out.char_indices().nth(ERROR_SNIPPET_CHARS) {
        out.truncate(cut);
        out.push('…');
    }
    out
}

pub(super) fn is_standby(e: &FsError) -> bool {
    matches!(e, FsError::Remote { exception, .. } if exception == "StandbyException")
}

/// Errors after which the next NameNode is tried: a standby answer, no usable connection
/// (as Hadoop's `WebHdfsFileSystem` fails over on `StandbyException` and
/// `ConnectException`), or a gateway in front of the NameNode saying it cannot reach it
/// (its own 502, 503, 504 page; a `RemoteException` with such a status, e.g. a
/// `RetriableException`, came from a running NameNode and is retried, not failed over).
/// When every NameNode fails so, the circuit opens (`circuit`).
pub(super) fn is_failover_error(e: &FsError) -> bool {
    is_standby(e) || matches!(e, FsError::Connection { .. }) || is_gateway_down(e)
}

/// A 502/503/504 whose body was not a `RemoteException` (`remote_error` then names the
/// exception after the status' reason phrase).
fn is_gateway_down(e: &FsError) -> bool {
    matches!(e, FsError::Remote { status: status @ 502..=504, exception, .. }
        if StatusCode::from_u16(*status)
            .ok()
            .and_then(|s| s.canonical_reason())
            == Some(exception.as_str()))
}

/// The server does not know the op: Hadoop's `ExceptionHandler` turns the failed enum
/// parse of `op` into HTTP 400 `IllegalArgumentException: Invalid value for webhdfs
/// parameter "op": ...`; HttpFS says `Invalid HTTP GET operation [<OP>]`.
pub(super) fn is_unknown_op(e: &FsError, op: &str) -> bool {
    matches!(e, FsError::Remote { status: 400, exception, message, .. }
        if (exception == "IllegalArgumentException"
            || exception == "UnsupportedOperationException")
            && (message.contains("\"op\"") || message.contains(op)))
}
