//! The `[tls]` section: certificate and key for the HTTP and Kafka
//! listeners and for HTTPS between the nodes of a cluster, and the CA that
//! signs client certificates (mutual TLS).

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
    /// PEM file with the CA certificates that sign client certificates. Set,
    /// both listeners ask every client for a certificate chaining to one of
    /// them; a verified certificate authenticates its connection as the
    /// token does. The node then shows its own certificate to peers that
    /// ask, so in a cluster it must chain to this CA too.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: `required` (default) refuses a handshake without a
    /// certificate; `requested` lets such a connection in, to authenticate
    /// with the token instead (probes included).
    pub client_auth: Option<ClientAuth>,
    /// How often the files above are read again; when one changed and they
    /// load, new connections (and calls to peers) use them: certificates
    /// rotate without a restart. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Option<std::time::Duration>,
}

/// `[tls] reload_interval` when not set.
pub const RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a client without a certificate may connect (`[tls] client_auth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// Every client shows a certificate that chains to `client_ca`.
    #[default]
    Required,
    /// A client may show none; it then needs the token when one is set.
    Requested,
}

impl TlsSettings {
    /// Whether TLS is on.
    pub fn enabled(&self) -> bool {
        self.cert.is_some()
    }

    /// Whether every client must show a certificate (`client_ca` with
    /// `client_auth = "required"`).
    pub fn certificates_required(&self) -> bool {
        self.client_ca.is_some() && self.client_auth.unwrap_or_default() == ClientAuth::Required
    }

    /// How often the files are read again (`reload_interval`).
    pub fn reload_every(&self) -> std::time::Duration {
        self.reload_interval.unwrap_or(RELOAD_INTERVAL)
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        match (&self.cert, &self.key) {
            (Some(_), Some(_)) | (None, None) => {}
            _ => return Err("tls.cert and tls.key go together: set both or neither".into()),
        }
        if self.ca.is_some() && self.cert.is_none() {
            return Err("tls.ca needs tls.cert and tls.key".into());
        }
        if self.client_ca.is_some() && self.cert.is_none() {
            return Err("tls.client_ca needs tls.cert and tls.key".into());
        }
        if self
            .reload_interval
            .is_some_and(|d| d < std::time::Duration::from_millis(100))
        {
            return Err("tls.reload_interval must be at least 100ms".into());
        }
        if self.client_auth.is_some() && self.client_ca.is_none() {
            return Err("tls.client_auth needs tls.client_ca (the CA client certificates chain to)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificates_need_a_server_identity_and_a_ca() {
        let files = |cert: bool, client_ca: bool, auth: Option<ClientAuth>| TlsSettings {
            cert: cert.then(|| "c.pem".into()),
            key: cert.then(|| "k.pem".into()),
            ca: None,
            client_ca: client_ca.then(|| "ca.pem".into()),
            client_auth: auth,
            reload_interval: None,
        };
        assert_eq!(files(true, true, Some(ClientAuth::Requested)).validate(), Ok(()));
        assert_eq!(files(true, true, None).validate(), Ok(()));
        assert!(files(true, true, None).certificates_required());
        assert!(!files(true, true, Some(ClientAuth::Requested)).certificates_required());
        assert!(!files(true, false, None).certificates_required());
        let e = files(false, true, None).validate().unwrap_err();
        assert!(e.contains("client_ca needs tls.cert"), "{e}");
        let e = files(true, false, Some(ClientAuth::Required)).validate().unwrap_err();
        assert!(e.contains("client_auth needs tls.client_ca"), "{e}");
        let parsed: TlsSettings =
            toml::from_str("cert = \"c\"\nkey = \"k\"\nclient_ca = \"ca\"\nclient_auth = \"requested\"\n")
                .expect("parse");
        assert_eq!(parsed.client_auth, Some(ClientAuth::Requested));
        assert!(toml::from_str::<TlsSettings>("client_auth = \"sometimes\"\n").is_err());
        let quick: TlsSettings =
            toml::from_str("cert = \"c\"\nkey = \"k\"\nreload_interval = \"1ms\"\n").expect("parse");
        let e = quick.validate().unwrap_err();
        assert!(e.contains("reload_interval"), "{e}");
        assert_eq!(files(true, false, None).reload_every(), RELOAD_INTERVAL);
    }
}
