//! TLS termination (`[server.tls]`): the rustls configuration the listeners accept with, and
//! the certificate it presents, read again whenever its files change so that a renewal needs
//! no restart.
//!
//! The certificate is looked up per handshake through [`Certificates`], which holds the
//! current one behind an `ArcSwap`; [`Certificates::watch`] compares the files' modification
//! times every [`WATCH_INTERVAL`] and swaps in the new pair once both read and match. A pair
//! that does not (a renewal caught between writing the certificate and the key, a broken
//! file) is logged and the old one kept; it is tried again at the next change. HTTP/1.1 only
//! (ALPN `http/1.1`), as the plain listener.
//!
//! With `client_ca`, a listener of its own (`client_port`) asks every client for a
//! certificate issued by that CA and refuses a handshake without one; the main port never
//! asks (a browser would show every visitor a certificate picker). The verified
//! certificate's SHA-256 goes with each request of the connection ([`VerifiedCertificate`],
//! connection data that actix-http hands to every request), where the guard's
//! `mtls_fingerprints` and `mtls_required` read it as they read a trusted proxy's header. The
//! CA file is read at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Fingerprint;

/// The client certificate a connection's TLS handshake verified: its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedCertificate(pub Fingerprint);

impl VerifiedCertificate {
    /// The leaf of `chain` (what the client presented), if there is one.
    pub fn of(chain: Option<&[CertificateDer<'_>]>) -> Option<Self> {
        let leaf = chain?.first()?;
        Some(VerifiedCertificate(Fingerprint(
            Sha256::digest(leaf).into(),
        )))
    }
}

/// How often the files are looked at.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Why a certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate, or a malformed one.
    #[error("{path}: no PEM certificate in it, or a malformed one")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no PEM private key.
    #[error("{path}: no PEM private key in it")]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is of a kind rustls cannot sign with, or does not match the certificate.
    #[error("{path}: {why}")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What rustls said (never the key).
        why: String,
    },
    /// The client CA file holds no usable CA certificate.
    #[error("{path}: no usable CA certificate in it{}", why.as_ref().map(|why| format!(" ({why})")).unwrap_or_default())]
    NoClientCa {
        /// The file.
        path: PathBuf,
        /// What rustls said, if it refused one.
        why: Option<String>,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The certificate presented to every client, swapped when its files change.
#[derive(Debug)]
pub struct Certificates {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl Certificates {
    /// Reads the pair at `cert_path` and `key_path`.
    pub fn load(cert_path: PathBuf, key_path: PathBuf) -> Result<Self, TlsError> {
        let pair = read_pair(&cert_path, &key_path)?;
        Ok(Certificates {
            cert_path,
            key_path,
            current: ArcSwap::from_pointee(pair),
        })
    }

    /// The rustls configuration presenting these certificates.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Config(error.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The rustls configuration of the client-certificate listener: these certificates, and
    /// a certificate issued by one of the CAs in `client_ca` required of every client.
    pub fn client_server_config(
        self: &Arc<Self>,
        client_ca: &Path,
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let pem = std::fs::read(client_ca).map_err(|source| TlsError::Read {
            path: client_ca.to_owned(),
            source,
        })?;
        let no_ca = |why: Option<String>| TlsError::NoClientCa {
            path: client_ca.to_owned(),
            why,
        };
        let mut roots = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            let certificate =
                certificate.map_err(|_| no_ca(Some("a malformed PEM block".into())))?;
            roots
                .add(certificate)
                .map_err(|error| no_ca(Some(error.to_string())))?;
        }
        if roots.is_empty() {
            return Err(no_ca(None));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|error| TlsError::Config(error.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Config(error.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Reads the files again whenever their modification times change, until `stop`. A pair
    /// that does not load is tried again at every look until one does (a renewal finished
    /// within the same second as a half-written one changes no coarse modification time),
    /// and logged once per change.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut seen = self.modified();
        let mut failing = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep(WATCH_INTERVAL) => {}
                () = stop.cancelled() => return,
            }
            let now = self.modified();
            if now == seen && !failing {
                continue;
            }
            let changed = now != seen;
            seen = now;
            match read_pair(&self.cert_path, &self.key_path) {
                Ok(pair) => {
                    self.current.store(Arc::new(pair));
                    failing = false;
                    info!(cert = %self.cert_path.display(), "TLS certificate reloaded");
                }
                Err(error) => {
                    if changed {
                        warn!(%error, "TLS certificate not reloaded; the previous one is still served");
                    }
                    failing = true;
                }
            }
        }
    }

    fn modified(&self) -> [Option<SystemTime>; 2] {
        let modified = |path: &Path| {
            std::fs::metadata(path)
                .and_then(|meta| meta.modified())
                .ok()
        };
        [modified(&self.cert_path), modified(&self.key_path)]
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The certificate chain at `cert_path` with the key at `key_path`, checked to match.
fn read_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert_path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate {
            path: cert_path.to_owned(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    }
    let key_pem = read(key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
        path: key_path.to_owned(),
    })?;
    let bad_key = |error: rustls::Error| TlsError::BadKey {
        path: key_path.to_owned(),
        why: error.to_string(),
    };
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key).map_err(bad_key)?;
    let pair = CertifiedKey::new(chain, signing_key);
    pair.keys_match().map_err(bad_key)?;
    Ok(pair)
}
