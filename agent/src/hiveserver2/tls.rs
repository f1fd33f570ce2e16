//! TLS under HiveServer2's transports (`hive.server2.use.SSL=true`, binary or HTTP): the
//! client configuration (the CA bundle of `ca_file`, or the Mozilla roots without one), the
//! handshake with host-name verification, and clear messages when it fails. It always fails
//! closed: there is no setting that skips verification.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

/// The TLS client configuration of a HiveServer2 endpoint: trusts the certificates of the PEM
/// bundle `ca_file`, or the Mozilla root program's without one (as the WebHDFS client does).
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("ca_file {}: bad PEM: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "ca_file {}: no PEM certificate in the file",
                    path.display()
                ));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS stream to a server.
pub(crate) type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Runs the TLS handshake on `tcp`, verifying the certificate for `host` (a DNS name or an IP
/// address, matched against the certificate's subject alternative names).
pub(crate) async fn handshake(
    config: &Arc<rustls::ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> Result<TlsStream, String> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| format!("{host:?} is not a host name for TLS: {e}"))?;
    tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
        .map_err(|e| describe(host, &e))
}

/// A handshake failure in words an operator acts on.
pub(crate) fn describe(host: &str, e: &std::io::Error) -> String {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(cert)) => certificate_problem(host, cert),
        Some(rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }) => {
            format!(
                "TLS handshake with {host} failed ({e}): the server did not answer with TLS; \
                 is SSL enabled on it (hive.server2.use.SSL), or is this the right port?"
            )
        }
        Some(other) => format!("TLS handshake with {host} failed: {other}"),
        None => format!(
            "TLS handshake with {host} failed: {e} (a server without SSL closes the \
             connection this way)"
        ),
    }
}

fn certificate_problem(host: &str, cert: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match cert {
        C::UnknownIssuer | C::BadSignature => format!(
            "the certificate of {host} is not trusted: it is not signed by a CA of ca_file \
             (or of the Mozilla roots without ca_file); refusing to connect"
        ),
        C::NotValidForName | C::NotValidForNameContext { .. } => format!(
            "the certificate of {host} is not valid for the name {host:?} (it names another \
             host; connect with a name in its subject alternative names); refusing to connect"
        ),
        C::Expired | C::ExpiredContext { .. } => {
            format!("the certificate of {host} has expired; refusing to connect")
        }
        C::NotValidYet | C::NotValidYetContext { .. } => {
            format!(
                "the certificate of {host} is not valid yet (check the clocks); refusing to connect"
            )
        }
        C::Revoked => format!("the certificate of {host} is revoked; refusing to connect"),
        other => format!("the certificate of {host} was refused ({other:?}); refusing to connect"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_problems_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = client_config(Some(&missing)).unwrap_err();
        assert!(e.contains("cannot read ca_file"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let e = client_config(Some(&empty)).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        assert!(client_config(None).is_ok());
    }

    #[test]
    fn certificate_errors_read_as_refusals() {
        let e = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let m = describe("hs2.example.com", &e);
        assert!(m.contains("not trusted") && m.contains("refusing"), "{m}");
        let e = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName),
        );
        let m = describe("127.0.0.1", &e);
        assert!(m.contains("not valid for the name \"127.0.0.1\""), "{m}");
    }
}
