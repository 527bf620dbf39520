//! How nodes prove who they are to each other: every call to a peer's
//! internal routes carries `Authorization: SluicePeer <node id>:<proof>`,
//! where the proof is HMAC-SHA256 of the node id under the cluster's
//! `secret` (hex). The secret is the cluster's own, never a client token,
//! so a client cannot act as a replica; and the proof binds the node id,
//! so the receiver knows which node calls (a fetch must name that node as
//! its replica).
//!
//! A node holding the secret can compute any node's proof: the secret is
//! shared by the cluster's nodes. With `[tls] client_ca`, the node facade
//! also requires the calling connection's certificate to name the address
//! of the node the proof names (`Host::verify_peer`), which binds the id to
//! a certificate per node (docs/SECURITY.md).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The authorization scheme of peer calls.
pub const SCHEME: &str = "SluicePeer";

fn mac(secret: &str, node: u32) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    m.update(b"sluice-peer:v1:");
    m.update(node.to_string().as_bytes());
    Some(m)
}

/// The `Authorization` header value node `node` sends.
pub fn header(secret: &str, node: u32) -> String {
    let proof = mac(secret, node)
        .map(|m| hex(&m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{SCHEME} {node}:{proof}")
}

/// The node an `Authorization` header proves, if it proves one.
pub fn verify(secret: &str, value: &str) -> Option<u32> {
    let rest = value.strip_prefix(SCHEME)?.strip_prefix(' ')?;
    let (node, proof) = rest.split_once(':')?;
    let node: u32 = node.parse().ok()?;
    let proof = unhex(proof)?;
    // Constant time in the proof (hmac's verify).
    mac(secret, node)?.verify_slice(&proof).ok()?;
    Some(node)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_names_its_node_and_needs_the_secret() {
        let h = header("s3cret", 2);
        assert_eq!(verify("s3cret", &h), Some(2));
        assert_eq!(verify("other", &h), None, "another secret");
        // Claiming another node with this node's proof fails.
        let forged = h.replacen("SluicePeer 2:", "SluicePeer 1:", 1);
        assert_eq!(verify("s3cret", &forged), None);
        for bad in [
            "",
            "Bearer x",
            "SluicePeer",
            "SluicePeer 2",
            "SluicePeer x:00",
            "SluicePeer 2:zz",
        ] {
            assert_eq!(verify("s3cret", bad), None, "{bad:?}");
        }
    }
}
