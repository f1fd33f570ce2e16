//! TLS of the web config file (`tls_server_config`): certificate, key, protocol versions and
//! client certificates, as exporter-toolkit reads them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::RawTls;

fn tls_version(v: &str) -> Result<&'static rustls::SupportedProtocolVersion, String> {
    match v {
        "TLS12" => Ok(&rustls::version::TLS12),
        "TLS13" => Ok(&rustls::version::TLS13),
        other => Err(format!(
            "unsupported TLS version {other:?} (TLS12 or TLS13)"
        )),
    }
}

pub(super) fn build_tls(
    t: &RawTls,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<rustls::ServerConfig, String> {
    let read = |p: &Path| std::fs::read(resolve(p)).map_err(|e| format!("{}: {e}", p.display()));
    let certs: Vec<_> = rustls_pemfile::certs(&mut read(&t.cert_file)?.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert_file: {e}"))?;
    if certs.is_empty() {
        return Err("cert_file holds no certificate".into());
    }
    let key = rustls_pemfile::private_key(&mut read(&t.key_file)?.as_slice())
        .map_err(|e| format!("key_file: {e}"))?
        .ok_or("key_file holds no private key")?;
    let min = t
        .min_version
        .as_deref()
        .map(tls_version)
        .transpose()?
        .unwrap_or(&rustls::version::TLS12);
    let max = t
        .max_version
        .as_deref()
        .map(tls_version)
        .transpose()?
        .unwrap_or(&rustls::version::TLS13);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| {
                let rank = |x: &rustls::SupportedProtocolVersion| {
                    u8::from(x.version == rustls::ProtocolVersion::TLSv1_3)
                };
                rank(v) >= rank(min) && rank(v) <= rank(max)
            })
            .collect();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = match t.client_auth_type.as_deref().unwrap_or("NoClientCert") {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let ca = t
                .client_ca_file
                .as_ref()
                .ok_or("client_ca_file is required for client certificates")?;
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut read(ca)?.as_slice()) {
                roots
                    .add(c.map_err(|e| format!("client_ca_file: {e}"))?)
                    .map_err(|e| e.to_string())?;
            }
            let mut v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            if t.client_auth_type.as_deref() == Some("VerifyClientCertIfGiven") {
                v = v.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(v.build().map_err(|e| e.to_string())?)
        }
        other => return Err(format!("unsupported client_auth_type {other:?}")),
    };
    builder
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())
}
