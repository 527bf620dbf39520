//! The `[tls]` section: certificate and key for the HTTP and Kafka
//! listeners and for HTTPS between the nodes of a cluster.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file with the node's certificate chain (leaf first). With `key`,
    /// both listeners speak TLS only, and peers are reached over HTTPS.
    pub cert: Option<PathBuf>,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// PEM file with the CA certificates a peer's certificate must chain to
    /// when this node connects to it. Default: the certificates in `cert`
    /// (one self-signed certificate shared by all nodes).
    pub ca: Option<PathBuf>,
}

impl TlsSettings {
    /// Whether TLS is on.
    pub fn enabled(&self) -> bool {
        self.cert.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        match (&self.cert, &self.key) {
            (Some(_), Some(_)) | (None, None) => {}
            _ => return Err("tls.cert and tls.key go together: set both or neither".into()),
        }
        if self.ca.is_some() && self.cert.is_none() {
            return Err("tls.ca needs tls.cert and tls.key".into());
        }
        Ok(())
    }
}
