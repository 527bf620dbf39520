//! The CLI's TLS files: the CA an `https://` server's certificate must chain
//! to, and a client certificate with its key for a node that asks for one
//! (`[tls] client_ca`). Each file is read and checked before any request,
//! so a bad one is an input error naming it.

use std::path::Path;

use super::error::ClientError;

/// Files for `https://` servers (all optional).
#[derive(Debug, Default, Clone, Copy)]
pub struct TlsFiles<'a> {
    /// PEM certificates the server's must chain to, instead of the system's
    /// roots (`--ca`).
    pub ca: Option<&'a Path>,
    /// PEM client certificate chain, leaf first (`--client-cert`).
    pub cert: Option<&'a Path>,
    /// Its PEM private key (`--client-key`).
    pub key: Option<&'a Path>,
}

fn read(flag: &str, path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::input(format!("cannot read {flag} `{}`: {e}", path.display())))
}

/// `builder` set up with `files`.
pub fn configure(
    mut builder: reqwest::ClientBuilder,
    files: TlsFiles<'_>,
) -> Result<reqwest::ClientBuilder, ClientError> {
    if let Some(ca) = files.ca {
        let pem = read("--ca", ca)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| ClientError::input(format!("--ca `{}` is not PEM certificates: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(ClientError::input(format!(
                "--ca `{}` holds no PEM certificate",
                ca.display()
            )));
        }
        builder = builder.tls_certs_only(certs);
    }
    match (files.cert, files.key) {
        (None, None) => {}
        (Some(cert), Some(key)) => {
            let mut pem = read("--client-cert", cert)?;
            pem.push(b'\n');
            pem.extend(read("--client-key", key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                ClientError::input(format!(
                    "--client-cert `{}` and --client-key `{}` are not a PEM certificate and its key: {e}",
                    cert.display(),
                    key.display()
                ))
            })?;
            builder = builder.identity(identity);
        }
        _ => {
            return Err(ClientError::input(
                "--client-cert and --client-key go together: give both or neither",
            ));
        }
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input_error(files: TlsFiles<'_>) -> String {
        match configure(reqwest::Client::builder(), files) {
            Err(ClientError::Input(m)) => m,
            other => panic!("expected an input error, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn bad_files_are_input_errors_naming_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("nope.pem");
        let m = input_error(TlsFiles {
            ca: Some(&missing),
            ..TlsFiles::default()
        });
        assert!(m.contains("nope.pem"), "{m}");
        let m = input_error(TlsFiles {
            cert: Some(&missing),
            ..TlsFiles::default()
        });
        assert!(m.contains("go together"), "{m}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").expect("write");
        let m = input_error(TlsFiles {
            cert: Some(&junk),
            key: Some(&junk),
            ..TlsFiles::default()
        });
        assert!(m.contains("junk.pem"), "{m}");
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.pem()).expect("write");
        std::fs::write(&k, signing_key.serialize_pem()).expect("write");
        let files = TlsFiles {
            ca: Some(&c),
            cert: Some(&c),
            key: Some(&k),
        };
        assert!(configure(reqwest::Client::builder(), files).is_ok());
    }
}
