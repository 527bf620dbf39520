//! TLS material of a node: the server configuration both listeners use and
//! the client configuration for reaching peers, built once at start from
//! `[tls]` with rustls and the aws-lc-rs provider (the one the object-store
//! client already links).
//!
//! Invariants: with `[tls]` set, every listener accepts TLS only (a plain
//! connection fails its handshake and is closed); a file that is missing,
//! unreadable or holds no certificate or key stops the node at start with
//! an error naming the file, never at the first connection. With
//! `client_ca`, a certificate a client shows is verified against it during
//! the handshake (a bad one fails the handshake), so a connection that has
//! peer certificates after it ([`client_certificate`]) has a verified one.
//! [`LiveTls`] holds the configuration new connections use and swaps it
//! only for files that load as a whole.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ClientAuth, TlsSettings};
use crate::error::Error;

/// A node's TLS configurations, as loaded once from `[tls]`.
#[derive(Clone)]
pub struct Tls {
    /// For the HTTP and Kafka listeners.
    pub server: Arc<rustls::ServerConfig>,
    /// For connections to peers: trusts `[tls] ca` (or the node's own
    /// certificates).
    pub client: Arc<rustls::ClientConfig>,
    /// When the certificates of each file expire (seconds since the epoch;
    /// a file's earliest): `cert`, `ca` (when set), `client_ca` (when set).
    pub expiries: Vec<(&'static str, i64)>,
}

/// The earliest `notAfter` of `certs`, in seconds since the epoch (`None`
/// when none parses: rustls has refused those already).
pub fn expiry(certs: &[CertificateDer<'_>]) -> Option<i64> {
    certs
        .iter()
        .filter_map(|c| x509_parser::parse_x509_certificate(c).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .min()
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls { .. }")
    }
}

/// `[tls]` as last loaded, swapped when its files change (certificate
/// rotation without a restart). A change that does not load (a key that
/// does not match its certificate yet, a truncated file) leaves the last
/// good configuration in place; the next change is tried again.
pub struct LiveTls {
    settings: TlsSettings,
    current: RwLock<Arc<Tls>>,
    /// The files' contents when last looked at (`None`: unreadable),
    /// loaded or not: each state is tried, and reported, once.
    seen: Mutex<Vec<Option<Vec<u8>>>>,
}

impl std::fmt::Debug for LiveTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveTls { .. }")
    }
}

impl LiveTls {
    /// Loads `[tls]`; `None` when TLS is off.
    pub fn load(settings: &TlsSettings) -> Result<Option<LiveTls>, Error> {
        let seen = fingerprint(settings);
        Ok(load(settings)?.map(|tls| LiveTls {
            settings: settings.clone(),
            current: RwLock::new(Arc::new(tls)),
            seen: Mutex::new(seen),
        }))
    }

    /// The configuration new connections use.
    pub fn current(&self) -> Arc<Tls> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the files again and, when any changed since it last looked,
    /// loads them and swaps them in: `Ok(true)`. `Err` when they changed
    /// but do not load (or one cannot be read); the configuration in use
    /// stays, and the same files are not tried again.
    pub fn reload_if_changed(&self) -> Result<bool, Error> {
        let now = fingerprint(&self.settings);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == now {
                return Ok(false);
            }
            *seen = now;
        }
        let Some(tls) = load(&self.settings)? else {
            return Ok(false);
        };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(tls);
        Ok(true)
    }
}

/// The contents of every file `[tls]` names (`None`: unreadable; loading
/// then says why).
fn fingerprint(settings: &TlsSettings) -> Vec<Option<Vec<u8>>> {
    [&settings.cert, &settings.key, &settings.ca, &settings.client_ca]
        .into_iter()
        .flatten()
        .map(|p| std::fs::read(p).ok())
        .collect()
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

/// The trust anchors in `anchors`, read from `file`.
fn trust(file: &Path, anchors: Vec<CertificateDer<'static>>) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for anchor in anchors {
        roots
            .add(anchor)
            .map_err(|e| bad(file, &format!("not a usable trust anchor: {e}")))?;
    }
    Ok(roots)
}

/// The certificate (the leaf) the client of a finished handshake showed,
/// verified against `[tls] client_ca`.
pub fn client_certificate(conn: &rustls::ServerConnection) -> Option<CertificateDer<'static>> {
    conn.peer_certificates()?.first().map(|c| c.clone().into_owned())
}

/// Whether `cert` names `host` (a DNS name or an IP address, in brackets or
/// not) as a server certificate for that host would: the same check peers
/// make of a node's certificate when they connect to its address.
pub fn names(cert: &CertificateDer<'_>, host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => rustls_pki_types::ServerName::IpAddress(ip.into()),
        Err(_) => match rustls_pki_types::ServerName::try_from(bare) {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    rustls::server::ParsedCertificate::try_from(cert)
        .is_ok_and(|parsed| rustls::client::verify_server_name(&parsed, &name).is_ok())
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
        .map_err(|e| Error::invalid(format!("bad setting: tls: {e}")))?;
    let server = match &settings.client_ca {
        None => server.with_no_client_auth(),
        Some(client_ca) => {
            let roots = Arc::new(trust(client_ca, certificates(client_ca)?)?);
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider());
            let verifier = match settings.client_auth.unwrap_or_default() {
                ClientAuth::Required => verifier,
                ClientAuth::Requested => verifier.allow_unauthenticated(),
            };
            let verifier = verifier
                .build()
                .map_err(|e| bad(client_ca, &format!("cannot verify client certificates with it: {e}")))?;
            server.with_client_cert_verifier(verifier)
        }
    };
    let server = server.with_single_cert(certs.clone(), key.clone_key()).map_err(|e| {
        bad(
            cert_path,
            &format!("certificate and key do not make a server identity: {e}"),
        )
    })?;
    let mut expiries: Vec<(&'static str, i64)> = expiry(&certs).map(|t| ("cert", t)).into_iter().collect();
    if let Some(client_ca) = &settings.client_ca {
        expiries.extend(expiry(&certificates(client_ca)?).map(|t| ("client_ca", t)));
    }
    let anchors = match &settings.ca {
        Some(ca) => certificates(ca)?,
        None => certs.clone(),
    };
    if settings.ca.is_some() {
        expiries.extend(expiry(&anchors).map(|t| ("ca", t)));
    }
    let roots = trust(settings.ca.as_deref().unwrap_or(cert_path), anchors)?;
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid(format!("bad setting: tls: {e}")))?
        .with_root_certificates(roots);
    // A node that asks clients for certificates is in a cluster that uses
    // them: it shows its own to peers that ask.
    let client = match settings.client_ca {
        None => client.with_no_client_auth(),
        Some(_) => client.with_client_auth_cert(certs, key).map_err(|e| {
            bad(
                cert_path,
                &format!("certificate and key do not make a client identity: {e}"),
            )
        })?,
    };
    Ok(Some(Tls {
        server: Arc::new(server),
        client: Arc::new(client),
        expiries,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_identity(cert: &Path, key: &Path) {
        let rcgen::CertifiedKey { cert: c, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        std::fs::write(cert, c.pem()).expect("write cert");
        std::fs::write(key, signing_key.serialize_pem()).expect("write key");
    }

    #[test]
    fn the_earliest_expiry_of_a_file_is_read() {
        let cert = |year: i32| {
            let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
            params.not_after = rcgen::date_time_ymd(year, 1, 1);
            let key = rcgen::KeyPair::generate().expect("key");
            params.self_signed(&key).expect("cert").der().clone()
        };
        // 2030-01-01 and 2031-01-01, 00:00 UTC.
        assert_eq!(expiry(&[cert(2031), cert(2030)]), Some(1_893_456_000));
        assert_eq!(expiry(&[cert(2031)]), Some(1_924_992_000));
        assert_eq!(expiry(&[CertificateDer::from(vec![1, 2, 3])]), None);
    }

    #[test]
    fn changed_files_are_swapped_in_only_when_they_load_and_each_state_is_tried_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        write_identity(&cert, &key);
        let settings = TlsSettings {
            cert: Some(cert.clone()),
            key: Some(key.clone()),
            ..TlsSettings::default()
        };
        let live = LiveTls::load(&settings).expect("load").expect("on");
        let first = live.current();
        assert!(!live.reload_if_changed().expect("unchanged"));
        // A certificate that does not parse: refused, the first stays.
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").expect("break");
        assert!(live.reload_if_changed().is_err());
        assert!(Arc::ptr_eq(&first, &live.current()));
        // The same broken files are not tried (nor reported) again.
        assert!(!live.reload_if_changed().expect("same state"));
        // A new certificate whose key is gone: one error naming it, then quiet.
        write_identity(&cert, &key);
        std::fs::remove_file(&key).expect("remove");
        let e = live.reload_if_changed().unwrap_err();
        assert!(e.to_string().contains("k.pem"), "{e}");
        assert!(!live.reload_if_changed().expect("same state"));
        // A new identity that loads is swapped in.
        write_identity(&cert, &key);
        assert!(live.reload_if_changed().expect("reload"));
        assert!(!Arc::ptr_eq(&first, &live.current()));
        assert!(!live.reload_if_changed().expect("unchanged"));
    }
}
