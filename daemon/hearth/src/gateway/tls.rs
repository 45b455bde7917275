//! TLS, built in (rustls, ring): `--tls-cert` and `--tls-key` (PEM) make
//! the gateway speak HTTPS only, HTTP/2 and HTTP/1.1 by ALPN. Built in
//! rather than left to a reverse proxy so that one binary is the whole
//! service, the management token never crosses the network in clear, and
//! the Host/Origin checks see what the client sent.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {path}: {reason}; give a PEM certificate chain with --tls-cert")]
    Cert { path: String, reason: String },
    #[error("cannot read the TLS key {path}: {reason}; give a PEM private key (PKCS#8, PKCS#1 or SEC1) with --tls-key")]
    Key { path: String, reason: String },
    #[error("the TLS certificate and key do not go together: {0}; check --tls-cert and --tls-key")]
    Pair(String),
}

/// The acceptor for `cert` and `key`.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert.display().to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert.display().to_string(),
            reason: "no certificate in it".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Pair(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Pair(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
