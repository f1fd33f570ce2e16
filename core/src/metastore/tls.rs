//! TLS to the MetaStore's database: the settings (libpq's `sslmode` names), loading the CA
//! bundle and the client certificate, the rustls client configuration of the PostgreSQL
//! backend, the `mysql_async` TLS options of the MySQL backend, and naming why a handshake
//! failed (untrusted issuer, host-name mismatch, expired certificate, no TLS on the server)
//! instead of a generic connection error.
//!
//! Modes, as libpq defines them:
//! * `disable` — plain TCP (the default, as before TLS support);
//! * `require` — encrypted, the server's certificate is not checked (a self-signed server
//!   works; protects against passive listeners only);
//! * `verify-ca` — encrypted, the certificate must chain to `ca_file` (any host name);
//! * `verify-full` — `verify-ca` and the certificate must name the host of the URL.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use serde::Deserialize;

/// `[cluster.metastore] tls`: libpq's `sslmode` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain TCP.
    #[default]
    Disable,
    /// Encrypted; the certificate is not checked.
    Require,
    /// Encrypted; the certificate must chain to the CA bundle.
    VerifyCa,
    /// Encrypted; the certificate must chain to the CA bundle and name the host.
    VerifyFull,
}

impl TlsMode {
    /// The configuration's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate is checked against the CA bundle.
    pub fn verifies(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client certificate (PEM chain) and its private key (PEM: PKCS#8, PKCS#1 or SEC1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// Certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Private key (a secret: its permissions are checked at start-up).
    pub key_file: PathBuf,
}

/// Validated TLS settings of one MetaStore connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// The mode.
    pub mode: TlsMode,
    /// CA bundle (PEM) for `verify-ca` and `verify-full`.
    pub ca_file: Option<PathBuf>,
    /// Client certificate, if the server wants one (`REQUIRE X509`, `clientcert=`).
    pub client_cert: Option<ClientCert>,
}

impl TlsSettings {
    /// `tls=verify-full ca=/etc/ssl/db-ca.pem client-cert=/etc/…/client.pem`, for `check`
    /// and logs (paths only, never contents).
    pub fn describe(&self) -> String {
        let mut out = format!("tls={}", self.mode);
        if let Some(ca) = &self.ca_file {
            out.push_str(&format!(" ca={}", ca.display()));
        }
        if let Some(c) = &self.client_cert {
            out.push_str(&format!(" client-cert={}", c.cert_file.display()));
        }
        out
    }

    /// Reads and parses the CA bundle and the client certificate and key, so that a wrong
    /// file fails at start-up rather than at the first connection.
    pub fn load_files(&self) -> Result<(), String> {
        if let Some(ca) = &self.ca_file {
            load_roots(ca)?;
        }
        if let Some(c) = &self.client_cert {
            load_client_cert(c)?;
        }
        Ok(())
    }
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

/// The certificates of a PEM bundle.
fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem(path, what)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// The trust anchors of a CA bundle.
pub(crate) fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, "ca_file")? {
        roots
            .add(cert)
            .map_err(|e| format!("ca_file {}: unusable certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The client certificate chain and its key.
pub(crate) fn load_client_cert(
    c: &ClientCert,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let certs = load_certs(&c.cert_file, "client_cert_file")?;
    let pem = read_pem(&c.key_file, "client_key_file")?;
    // The key's contents never reach an error message: only the file name does.
    let key = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|_| format!("client_key_file {} is not PEM", c.key_file.display()))?
        .ok_or_else(|| {
            format!(
                "client_key_file {} holds no private key (PKCS#8, PKCS#1 or SEC1 PEM)",
                c.key_file.display()
            )
        })?;
    Ok((certs, key))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration of `settings` (PostgreSQL; `disable` has none).
pub(crate) fn client_config(settings: &TlsSettings) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = match settings.mode {
        TlsMode::Disable | TlsMode::Require => Arc::new(NoCertificateCheck(provider)),
        TlsMode::VerifyCa | TlsMode::VerifyFull => {
            let ca = settings
                .ca_file
                .as_deref()
                .ok_or_else(|| format!("tls = \"{}\" needs ca_file", settings.mode))?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(load_roots(ca)?), provider)
                    .build()
                    .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            if settings.mode == TlsMode::VerifyFull {
                webpki
            } else {
                Arc::new(AnyHostName(webpki))
            }
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match &settings.client_cert {
        Some(c) => {
            let (certs, key) = load_client_cert(c)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("client certificate {}: {e}", c.cert_file.display()))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The `mysql_async` TLS options of `settings`: `None` for `disable`. `verify-ca` is refused
/// by configuration validation for MySQL (see [`crate::config::RawMetastore`]).
pub(crate) fn mysql_ssl_opts(
    settings: &TlsSettings,
) -> Result<Option<mysql_async::SslOpts>, String> {
    let mut opts = match settings.mode {
        TlsMode::Disable => return Ok(None),
        TlsMode::Require => mysql_async::SslOpts::default().with_danger_accept_invalid_certs(true),
        TlsMode::VerifyCa | TlsMode::VerifyFull => mysql_async::SslOpts::default()
            .with_disable_built_in_roots(true)
            .with_root_certs(settings.ca_file.iter().map(|p| p.clone().into()).collect()),
    };
    if let Some(c) = &settings.client_cert {
        opts = opts.with_client_identity(Some(mysql_async::ClientIdentity::new(
            c.cert_file.clone().into(),
            mysql_client_key(&c.key_file)?.into(),
        )));
    }
    Ok(Some(opts))
}

/// The client key as `mysql_async` 0.36 reads it: PKCS#1 DER (its PEM reader takes only
/// `RSA PRIVATE KEY` blocks). A PKCS#8 RSA key (what `openssl genpkey`/`req -newkey` write)
/// is unwrapped to the PKCS#1 key it holds; other key types are refused with the reason.
pub(crate) fn mysql_client_key(path: &Path) -> Result<Vec<u8>, String> {
    let pem = read_pem(path, "client_key_file")?;
    let key = rustls_pemfile::private_key(&mut pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| format!("client_key_file {} holds no private key", path.display()))?;
    let unsupported = || {
        format!(
            "client_key_file {}: MySQL/MariaDB client keys must be RSA (PKCS#1 or PKCS#8 PEM)",
            path.display()
        )
    };
    match key {
        PrivateKeyDer::Pkcs1(k) => Ok(k.secret_pkcs1_der().to_vec()),
        PrivateKeyDer::Pkcs8(k) => pkcs8_rsa_to_pkcs1(k.secret_pkcs8_der())
            .map(<[u8]>::to_vec)
            .ok_or_else(unsupported),
        _ => Err(unsupported()),
    }
}

/// One DER element at the start of `der`: (tag, contents, rest).
fn der_element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `rsaEncryption` (1.2.840.113549.1.1.1) as a DER OID's contents.
const RSA_ENCRYPTION_OID: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (RFC 5208: SEQUENCE of
/// version, AlgorithmIdentifier, privateKey OCTET STRING); `None` for other algorithms.
fn pkcs8_rsa_to_pkcs1(der: &[u8]) -> Option<&[u8]> {
    let (0x30, info, _) = der_element(der)? else {
        return None;
    };
    let (0x02, _version, rest) = der_element(info)? else {
        return None;
    };
    let (0x30, algorithm, rest) = der_element(rest)? else {
        return None;
    };
    let (0x06, oid, _) = der_element(algorithm)? else {
        return None;
    };
    if oid != RSA_ENCRYPTION_OID {
        return None;
    }
    let (0x04, key, _) = der_element(rest)? else {
        return None;
    };
    Some(key)
}

/// `require`: any certificate, but the handshake's signatures are still checked (the peer
/// holds the key of the certificate it sent).
#[derive(Debug)]
struct NoCertificateCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked as in `verify-full`; only a name mismatch passes.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The rustls error somewhere in `err`'s chain of causes (also inside `std::io::Error`s,
/// whose `source` skips the error they wrap).
fn find_rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(found) = find_rustls_error(inner) {
                return Some(found);
            }
        }
        cur = e.source();
    }
    None
}

/// Why a TLS handshake with `host` failed, in words an operator can act on; `None` when `err`
/// is not a TLS failure.
pub(crate) fn describe_tls_failure(
    err: &(dyn std::error::Error + 'static),
    host: &str,
    settings: &TlsSettings,
) -> Option<String> {
    let ca = settings
        .ca_file
        .as_deref()
        .map_or_else(|| "no ca_file".to_owned(), |p| p.display().to_string());
    let e = find_rustls_error(err)?;
    Some(match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => format!(
                "the server's certificate is not signed by a trusted CA (untrusted issuer; ca_file {ca})"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the server's certificate does not match host {host:?} ({cert}; tls = \"verify-full\" checks the host name of the URL)"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the server's certificate has expired ({cert})")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("the server's certificate is not valid yet ({cert})")
            }
            CertificateError::Revoked => "the server's certificate is revoked".to_owned(),
            other => format!("the server's certificate was rejected: {other}"),
        },
        rustls::Error::AlertReceived(alert) => format!(
            "the server ended the TLS handshake ({alert:?}): it may want a client certificate (client_cert_file) or reject the one sent"
        ),
        other => format!("TLS handshake failed: {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_with_libpq_names() {
        #[derive(Deserialize)]
        struct T {
            tls: TlsMode,
        }
        for (text, mode) in [
            ("disable", TlsMode::Disable),
            ("require", TlsMode::Require),
            ("verify-ca", TlsMode::VerifyCa),
            ("verify-full", TlsMode::VerifyFull),
        ] {
            let t: T = toml::from_str(&format!("tls = \"{text}\"")).unwrap();
            assert_eq!(t.tls, mode);
            assert_eq!(mode.as_str(), text);
        }
        assert!(toml::from_str::<T>("tls = \"prefer\"").is_err());
        assert_eq!(TlsMode::default(), TlsMode::Disable);
    }

    #[test]
    fn pkcs8_rsa_keys_unwrap_to_pkcs1() {
        // PrivateKeyInfo { version 0, { rsaEncryption, NULL }, OCTET STRING { 30 03 02 01 07 } }.
        let inner = [0x30, 0x03, 0x02, 0x01, 0x07];
        let mut der = vec![0x30, 0x14, 0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09];
        der.extend_from_slice(&RSA_ENCRYPTION_OID);
        der.extend_from_slice(&[0x05, 0x00, 0x04, 0x05]);
        der.extend_from_slice(&inner);
        // Fix the outer length: everything after the first two bytes.
        der[1] = u8::try_from(der.len() - 2).unwrap();
        // The AlgorithmIdentifier holds the OID (2 + 9 bytes) and NULL (2 bytes).
        der[6] = 0x0d;
        assert_eq!(pkcs8_rsa_to_pkcs1(&der), Some(&inner[..]));
        // Another algorithm (id-ecPublicKey 1.2.840.10045.2.1) is not unwrapped.
        let mut ec = der.clone();
        ec[9..18].copy_from_slice(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x00, 0x00]);
        assert_eq!(pkcs8_rsa_to_pkcs1(&ec), None);
        assert_eq!(pkcs8_rsa_to_pkcs1(&der[..10]), None);
        // Long-form lengths.
        let long = [0x04, 0x81, 0x02, 0xaa, 0xbb];
        assert_eq!(der_element(&long), Some((0x04, &[0xaa, 0xbb][..], &[][..])));
    }

    #[test]
    fn a_failure_is_named_through_io_errors() {
        let settings = TlsSettings {
            mode: TlsMode::VerifyFull,
            ca_file: Some("/etc/ca.pem".into()),
            client_cert: None,
        };
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let why = describe_tls_failure(&io, "db", &settings).unwrap();
        assert!(why.contains("not signed by a trusted CA"), "{why}");
        assert!(why.contains("/etc/ca.pem"), "{why}");
        let name = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
        );
        let why = describe_tls_failure(&name, "db.example", &settings).unwrap();
        assert!(why.contains("does not match host \"db.example\""), "{why}");
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(describe_tls_failure(&plain, "db", &settings).is_none());
    }

    #[test]
    fn unreadable_or_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let s = TlsSettings {
            mode: TlsMode::VerifyFull,
            ca_file: Some(empty),
            client_cert: None,
        };
        let e = s.load_files().unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let s = TlsSettings {
            ca_file: Some(dir.path().join("missing.pem")),
            ..s
        };
        assert!(s.load_files().unwrap_err().contains("cannot read ca_file"));
        assert_eq!(
            TlsSettings {
                mode: TlsMode::VerifyFull,
                ca_file: Some("/a.pem".into()),
                client_cert: Some(ClientCert {
                    cert_file: "/c.pem".into(),
                    key_file: "/k.pem".into()
                })
            }
            .describe(),
            "tls=verify-full ca=/a.pem client-cert=/c.pem"
        );
    }
}
