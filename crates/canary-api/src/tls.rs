//! TLS for the API (rustls): a certificate chain and a private key from
//! PEM files, read again whenever either file changes (a renewed
//! certificate is served from the next handshake on, without a restart).
//! A changed pair that does not load is reported and the previous one
//! stays in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
pub use rustls::ServerConfig;
use tracing::{info, warn};

/// Why the certificate files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("cannot configure TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// The certificate and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// What identifies a version of the files: modification time and length
/// of both.
type Stamp = [(Option<SystemTime>, u64); 2];

fn stamp(files: &TlsFiles) -> Stamp {
    let one = |path: &Path| {
        std::fs::metadata(path)
            .map(|m| (m.modified().ok(), m.len()))
            .unwrap_or((None, 0))
    };
    [one(&files.cert), one(&files.key)]
}

fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let file_error = |path: &Path, reason: String| TlsError::File {
        path: path.display().to_string(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_error(&files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(&files.cert, "no PEM certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| file_error(&files.key, e.to_string()))?;
    let signer = any_supported_type(&key).map_err(|e| file_error(&files.key, e.to_string()))?;
    let pair = CertifiedKey::new(certs, signer);
    pair.keys_match().map_err(|e| {
        file_error(
            &files.key,
            format!("does not match {}: {e}", files.cert.display()),
        )
    })?;
    Ok(Arc::new(pair))
}

/// Serves the certificate in the files, reloading it when they change.
#[derive(Debug)]
pub struct ReloadingCert {
    files: TlsFiles,
    current: Mutex<(Stamp, Arc<CertifiedKey>)>,
}

impl ReloadingCert {
    /// Loads the files now (an error here stops the start).
    pub fn new(files: TlsFiles) -> Result<ReloadingCert, TlsError> {
        let stamp = stamp(&files);
        let key = load(&files)?;
        Ok(ReloadingCert {
            files,
            current: Mutex::new((stamp, key)),
        })
    }

    fn current(&self) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().ok()?;
        let now = stamp(&self.files);
        if now != current.0 {
            current.0 = now;
            match load(&self.files) {
                Ok(key) => {
                    info!(cert = %self.files.cert.display(), "the API's TLS certificate changed: serving the new one");
                    current.1 = key;
                }
                Err(err) => {
                    warn!("the API's TLS certificate changed but cannot be used, the previous one stays: {err}")
                }
            }
        }
        Some(Arc::clone(&current.1))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

/// The server configuration serving `files` (HTTP/1.1).
pub fn server_config(files: TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let resolver = Arc::new(ReloadingCert::new(files)?);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
