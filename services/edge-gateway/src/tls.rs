//! TLS termination with rustls, for deployments without an ingress in front.
//!
//! The certificate chain and key are PEM files named in `http.tls`; ALPN offers `h2` then
//! `http/1.1`. The files are watched (their modification time and size, polled) and a changed
//! pair is loaded for new handshakes without a restart, so a renewed certificate (cert-manager,
//! certbot) is picked up on its own. A pair that does not load is logged and the previous one kept:
//! a half-written renewal never takes the listener down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("http.tls.cert_file {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("http.tls.key_file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("http.tls: {0}")]
    Setup(String),
}

/// The certificate handed to new handshakes; replaced when the files change.
#[derive(Debug)]
pub struct ReloadingCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCertificate {
    fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, key: Arc<CertifiedKey>) {
        match self.current.write() {
            Ok(mut guard) => *guard = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A TLS acceptor for the public listener, and the certificate it serves.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub certificate: Arc<ReloadingCertificate>,
    /// How long a client may take to complete its handshake.
    pub handshake_timeout: Duration,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Load the pair named in `config` and build the acceptor (start-up: an error stops the gateway).
pub fn build(config: &TlsConfig) -> Result<Tls, TlsError> {
    let provider = provider();
    let key = load(&config.cert_file, &config.key_file, &provider)?;
    let certificate = Arc::new(ReloadingCertificate {
        current: RwLock::new(Arc::new(key)),
    });
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Setup(err.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certificate.clone());
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        certificate,
        handshake_timeout: Duration::from_millis(config.handshake_timeout_ms),
    })
}

/// Read a PEM chain and key and check that they belong together.
fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_error = |reason: String| TlsError::Certificate {
        path: cert.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|err| cert_error(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| cert_error(err.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("holds no PEM certificate".into()));
    }
    let key_error = |reason: String| TlsError::Key {
        path: key.to_owned(),
        reason,
    };
    let private = PrivateKeyDer::from_pem_file(key).map_err(|err| key_error(err.to_string()))?;
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|err| key_error(err.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|err| key_error(format!("does not match the certificate: {err}")))?;
    Ok(certified)
}

/// What identifies a version of the files without reading them.
fn stamp(paths: [&Path; 2]) -> Option<[(SystemTime, u64); 2]> {
    let one = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    Some([one(paths[0])?, one(paths[1])?])
}

/// Poll the files every `interval` and load a changed pair, until `stop`.
pub async fn watch(
    certificate: Arc<ReloadingCertificate>,
    config: TlsConfig,
    interval: Duration,
    stop: CancellationToken,
) {
    let provider = provider();
    let paths = [config.cert_file.as_path(), config.key_file.as_path()];
    let mut seen = stamp(paths);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let now = stamp(paths);
        if now.is_none() || now == seen {
            continue;
        }
        match load(paths[0], paths[1], &provider) {
            Ok(key) => {
                certificate.replace(Arc::new(key));
                seen = now;
                tracing::info!(cert = %paths[0].display(), "TLS certificate reloaded");
            }
            // Often a renewal caught between its two writes: the next poll sees the pair whole.
            Err(err) => {
                tracing::warn!(error = %err, "the changed TLS files do not load; keeping the previous certificate")
            }
        }
    }
}
