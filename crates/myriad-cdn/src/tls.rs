//! TLS for the edge's HTTPS listeners (rustls): one certificate per site chosen by SNI, from
//! PEM files, or a self-signed development certificate; HTTP/2 or HTTP/1.1 by ALPN over TCP,
//! HTTP/3 over QUIC (TLS 1.3 only).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_rustls::rustls::crypto::{aws_lc_rs, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::version::TLS13;
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

/// A certificate chain and key in PEM files, served for `names` (none: the default).
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub names: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The server's TLS settings: for TCP (`tcp`, an acceptor offering h2 and http/1.1) and for
/// QUIC (`quic`, offering h3), sharing `certificates`.
pub struct Tls {
    pub tcp: TlsAcceptor,
    pub quic: Arc<ServerConfig>,
    pub certificates: Certificates,
}

/// The certificates by name, replaced whole when they are reloaded; connections already
/// made keep theirs.
#[derive(Clone)]
pub struct Certificates {
    table: Arc<ArcSwap<CertTable>>,
    provider: Arc<CryptoProvider>,
    /// The self-signed certificate, kept across reloads while no file names a default.
    development: Arc<CertifiedKey>,
}

/// Certificates read from their files, not yet served.
pub struct LoadedCertificates(CertTable);

impl Certificates {
    /// Reads the files anew.
    pub fn load(&self, files: &[CertFiles]) -> Result<LoadedCertificates, TlsError> {
        table(&self.provider, files, &self.development).map(LoadedCertificates)
    }

    /// Serves these from the next handshake on.
    pub fn install(&self, loaded: LoadedCertificates) {
        self.table.store(Arc::new(loaded.0));
    }
}

/// Picks the certificate by SNI; names no file covers get the first default-named file's
/// certificate, or a self-signed one for `dev_names` when there is none.
pub fn server(files: &[CertFiles], dev_names: Vec<String>) -> Result<Tls, TlsError> {
    // Named explicitly: the process links more than one rustls provider.
    let provider = Arc::new(aws_lc_rs::default_provider());
    let development = Arc::new(self_signed(&provider, dev_names)?);
    let table = table(&provider, files, &development)?;
    if Arc::ptr_eq(&table.default, &development) {
        tracing::warn!("no certificate files: serving a self-signed certificate");
    }
    let table = Arc::new(ArcSwap::from_pointee(table));
    let resolver = Arc::new(SniResolver {
        table: table.clone(),
    });
    let setup = |e: tokio_rustls::rustls::Error| TlsError::Setup(e.to_string());
    let mut tcp = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(setup)?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    tcp.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut quic = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&TLS13])
        .map_err(setup)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    quic.alpn_protocols = vec![b"h3".to_vec()];
    quic.max_early_data_size = 0; // no 0-RTT: replayable requests
    Ok(Tls {
        tcp: TlsAcceptor::from(Arc::new(tcp)),
        quic: Arc::new(quic),
        certificates: Certificates {
            table,
            provider,
            development,
        },
    })
}

fn table(
    provider: &CryptoProvider,
    files: &[CertFiles],
    development: &Arc<CertifiedKey>,
) -> Result<CertTable, TlsError> {
    let mut named = Vec::new();
    let mut default = None;
    for f in files {
        let key = Arc::new(load(provider, &f.cert, &f.key)?);
        let names = f.names.iter().map(|n| n.to_ascii_lowercase()).collect();
        named.push((names, key.clone()));
        if f.names.is_empty() || default.is_none() {
            default = Some(key);
        }
    }
    Ok(CertTable {
        named,
        default: default.unwrap_or_else(|| development.clone()),
    })
}

fn load(provider: &CryptoProvider, cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let shown = |p: &Path| p.display().to_string();
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert(shown(cert), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Cert(shown(cert), "no certificate in it".into()));
    }
    let der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key(shown(key), e.to_string()))?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::Key(shown(key), e.to_string()))?;
    Ok(CertifiedKey::new(certs, signing))
}

fn self_signed(provider: &CryptoProvider, names: Vec<String>) -> Result<CertifiedKey, TlsError> {
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Setup(e.to_string()))?;
    let der = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    Ok(CertifiedKey::new(
        vec![generated.cert.der().clone()],
        signing,
    ))
}

#[derive(Debug)]
struct SniResolver {
    table: Arc<ArcSwap<CertTable>>,
}

#[derive(Debug)]
struct CertTable {
    /// Certificates with the host names (exact or `*.` wildcards) they serve.
    named: Vec<(Vec<String>, Arc<CertifiedKey>)>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.table.load();
        let named = hello.server_name().and_then(|n| {
            let candidates = table
                .named
                .iter()
                .map(|(names, key)| (names.as_slice(), key));
            myriad_cache::host::best(&n.to_ascii_lowercase(), candidates)
        });
        Some(named.unwrap_or(&table.default).clone())
    }
}
