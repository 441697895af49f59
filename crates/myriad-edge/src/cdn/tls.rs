//! TLS for the edge's HTTPS listener (rustls): certificates from PEM files, or a self-signed
//! development certificate; HTTP/2 or HTTP/1.1 by ALPN.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate file {0}: {1}")]
    Cert(String, String),
    #[error("key file {0}: {1}")]
    Key(String, String),
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// What to serve.
pub enum TlsSource<'a> {
    Files {
        cert: &'a Path,
        key: &'a Path,
    },
    /// A self-signed certificate for these names (browsers warn; for development).
    SelfSigned {
        names: Vec<String>,
    },
}

pub fn acceptor(source: TlsSource<'_>) -> Result<TlsAcceptor, TlsError> {
    let (certs, key) = match source {
        TlsSource::Files { cert, key } => {
            let shown = |p: &Path| p.display().to_string();
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| TlsError::Cert(shown(cert), e.to_string()))?;
            if certs.is_empty() {
                return Err(TlsError::Cert(shown(cert), "no certificate in it".into()));
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| TlsError::Key(shown(key), e.to_string()))?;
            (certs, key)
        }
        TlsSource::SelfSigned { names } => {
            let generated = rcgen::generate_simple_self_signed(names)
                .map_err(|e| TlsError::Setup(e.to_string()))?;
            let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
                .map_err(|e| TlsError::Setup(e.to_string()))?;
            (vec![generated.cert.der().clone()], key)
        }
    };
    // Named explicitly: the process links more than one rustls provider.
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
