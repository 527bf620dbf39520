//! TLS material of a node: the server configuration both listeners use and
//! the client configuration for reaching peers, built once at start from
//! `[tls]` with rustls and the aws-lc-rs provider (the one the object-store
//! client already links).
//!
//! Invariants: with `[tls]` set, every listener accepts TLS only (a plain
//! connection fails its handshake and is closed); a file that is missing,
//! unreadable or holds no certificate or key stops the node at start with
//! an error naming the file, never at the first connection.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsSettings;
use crate::error::Error;

/// A node's TLS configurations.
#[derive(Clone)]
pub struct Tls {
    /// For the HTTP and Kafka listeners.
    pub server: Arc<rustls::ServerConfig>,
    /// For connections to peers: trusts `[tls] ca` (or the node's own
    /// certificates).
    pub client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls { .. }")
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn bad(path: &Path, what: &str) -> Error {
    Error::invalid(format!("bad setting: tls: `{}`: {what}", path.display()))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(path, &format!("cannot read certificates: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, &format!("cannot read certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad(path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// Loads `[tls]`; `None` when TLS is off.
pub fn load(settings: &TlsSettings) -> Result<Option<Tls>, Error> {
    let (Some(cert_path), Some(key_path)) = (&settings.cert, &settings.key) else {
        return Ok(None);
    };
    let certs = certificates(cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| bad(key_path, &format!("cannot read a PEM private key: {e}")))?;
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid(format!("bad setting: tls: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs.clone(), key)
        .map_err(|e| {
            bad(
                cert_path,
                &format!("certificate and key do not make a server identity: {e}"),
            )
        })?;
    let anchors = match &settings.ca {
        Some(ca) => certificates(ca)?,
        None => certs,
    };
    let mut roots = rustls::RootCertStore::empty();
    let anchor_file = settings.ca.as_deref().unwrap_or(cert_path);
    for anchor in anchors {
        roots
            .add(anchor)
            .map_err(|e| bad(anchor_file, &format!("not a usable trust anchor: {e}")))?;
    }
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid(format!("bad setting: tls: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Tls {
        server: Arc::new(server),
        client: Arc::new(client),
    }))
}
