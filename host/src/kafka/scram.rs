//! SASL SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) against the
//! node's token: any user name, the token as the password, as with PLAIN,
//! but the token never crosses the connection and the client checks that
//! the node knows it too.
//!
//! The node's keys (stored key, server key) are derived once per listener
//! from the token, with a random salt per mechanism and 4,096 iterations
//! (the least Kafka accepts). An exchange is two SaslAuthenticate rounds:
//! client-first → server-first (the client's nonce with ours appended,
//! the salt, the iterations), then client-final → server-final (our
//! signature). Invariants: a client-final is checked against the exact
//! messages of its own first round (gs2 header, combined nonce); the proof
//! is compared in constant time; channel binding, mandatory extensions and
//! delegation tokens (`tokenauth`) are refused; nothing is parsed with a
//! panic path.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// Iterations of the salted password (Kafka's minimum for both).
pub const ITERATIONS: u32 = 4096;

/// Bytes of a random salt and of the node's nonce.
const RANDOM_BYTES: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Sha256,
    Sha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn named(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            // HMAC takes keys of any length.
            match <M as hmac::digest::KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
        match self {
            Mechanism::Sha256 => run::<Hmac<Sha256>>(key, data),
            Mechanism::Sha512 => run::<Hmac<Sha512>>(key, data),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// RFC 5802's Hi(): PBKDF2 with this mechanism's HMAC.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec(),
            Mechanism::Sha512 => pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec(),
        }
    }
}

/// What the node keeps to check one mechanism's proofs (never the token).
pub struct Credentials {
    mechanism: Mechanism,
    salt: Vec<u8>,
    iterations: u32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl Credentials {
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    pub fn derive(mechanism: Mechanism, password: &[u8], salt: Vec<u8>, iterations: u32) -> Credentials {
        let salted = mechanism.salted_password(password, &salt, iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        Credentials {
            mechanism,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(&salted, b"Server Key"),
            salt,
            iterations,
        }
    }
}

/// Both mechanisms' credentials for a token, each with a fresh salt.
pub fn credentials_for(token: &str) -> Result<Vec<Credentials>, String> {
    Mechanism::ALL
        .into_iter()
        .map(|m| Ok(Credentials::derive(m, token.as_bytes(), random()?, ITERATIONS)))
        .collect()
}

/// Random bytes from the TLS provider's generator.
fn random() -> Result<Vec<u8>, String> {
    let mut b = vec![0u8; RANDOM_BYTES];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut b)
        .map_err(|_| "no random bytes from the system".to_string())?;
    Ok(b)
}

/// A fresh nonce for the node's half: printable, without commas.
pub fn server_nonce() -> Result<String, String> {
    Ok(B64.encode(random()?))
}

/// An exchange between its two rounds.
#[derive(Debug)]
pub struct Exchange {
    pub mechanism: Mechanism,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

/// Why an exchange failed (answered as SASL_AUTHENTICATION_FAILED).
pub type Refusal = String;

/// The first round: the client's first message in, the exchange and the
/// server-first message out.
pub fn first(creds: &Credentials, client_first: &[u8], server_nonce: &str) -> Result<(Exchange, String), Refusal> {
    let msg = std::str::from_utf8(client_first).map_err(|_| "the SCRAM message is not UTF-8".to_string())?;
    let malformed = || format!("malformed SCRAM client-first message `{msg}`");
    let (flag, rest) = msg.split_once(',').ok_or_else(malformed)?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err("SCRAM channel binding is not supported".into()),
        _ => return Err(malformed()),
    }
    let (authzid, bare) = rest.split_once(',').ok_or_else(malformed)?;
    if !(authzid.is_empty() || authzid.starts_with("a=")) {
        return Err(malformed());
    }
    let gs2_header = format!("{flag},{authzid},");
    let mut attrs = bare.split(',');
    let user = attrs.next().and_then(|a| a.strip_prefix("n=")).ok_or_else(malformed)?;
    let client_nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).ok_or_else(malformed)?;
    if user.is_empty() || client_nonce.is_empty() || !client_nonce.chars().all(|c| c.is_ascii_graphic()) {
        return Err(malformed());
    }
    for ext in attrs {
        if ext == "tokenauth=true" {
            return Err("delegation tokens are not supported: use the node's token as the password".into());
        }
    }
    let nonce = format!("{client_nonce}{server_nonce}");
    let server_first = format!("r={nonce},s={},i={}", B64.encode(&creds.salt), creds.iterations);
    let exchange = Exchange {
        mechanism: creds.mechanism,
        gs2_header,
        client_first_bare: bare.to_string(),
        server_first: server_first.clone(),
        nonce,
    };
    Ok((exchange, server_first))
}

/// The second round: the client's final message in, the server-final
/// message (the node's signature) out when the proof is right.
pub fn last(ex: &Exchange, creds: &Credentials, client_final: &[u8]) -> Result<String, Refusal> {
    let msg = std::str::from_utf8(client_final).map_err(|_| "the SCRAM message is not UTF-8".to_string())?;
    let malformed = || "malformed SCRAM client-final message".to_string();
    let (without_proof, proof) = msg.rsplit_once(",p=").ok_or_else(malformed)?;
    let mut attrs = without_proof.split(',');
    let binding = attrs.next().and_then(|a| a.strip_prefix("c=")).ok_or_else(malformed)?;
    let nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).ok_or_else(malformed)?;
    if binding != B64.encode(&ex.gs2_header) {
        return Err("the SCRAM channel binding does not match the first message".into());
    }
    // RFC 5802 has the client repeat the combined nonce; librdkafka sends
    // its own nonce again in front of it, and Kafka brokers accept any
    // nonce that ends with the combined one. Ours is still in it, so an
    // exchange cannot be replayed.
    if !nonce.ends_with(&ex.nonce) {
        return Err("the SCRAM nonce does not match the first round".into());
    }
    let proof = B64.decode(proof).map_err(|_| malformed())?;
    let auth_message = format!("{},{},{without_proof}", ex.client_first_bare, ex.server_first);
    let m = creds.mechanism;
    let signature = m.hmac(&creds.stored_key, auth_message.as_bytes());
    if proof.len() != signature.len() {
        return Err(malformed());
    }
    let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
    let stored = m.hash(&client_key);
    // Constant time: every byte compared whatever the first difference.
    let differs = stored
        .iter()
        .zip(&creds.stored_key)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if differs != 0 || stored.len() != creds.stored_key.len() {
        return Err("wrong password: the password is the node's auth token".into());
    }
    Ok(format!(
        "v={}",
        B64.encode(m.hmac(&creds.server_key, auth_message.as_bytes()))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example exchange (user `user`, password `pencil`).
    #[test]
    fn the_rfc_7677_exchange_is_answered_byte_for_byte() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let creds = Credentials::derive(Mechanism::Sha256, b"pencil", salt, 4096);
        let (ex, server_first) = first(
            &creds,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .expect("first");
        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            last(&ex, &creds, client_final.as_bytes()).expect("last"),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        // Another password's proof, a changed nonce or binding: refused.
        let wrong = Credentials::derive(Mechanism::Sha256, b"pencil2", creds.salt.clone(), 4096);
        let e = last(&ex, &wrong, client_final.as_bytes()).unwrap_err();
        assert!(e.contains("wrong password"), "{e}");
        let e = last(&ex, &creds, client_final.replace("NlF$k0", "NlF$k1").as_bytes()).unwrap_err();
        assert!(e.contains("nonce"), "{e}");
        let e = last(&ex, &creds, client_final.replace("c=biws", "c=eSws").as_bytes()).unwrap_err();
        assert!(e.contains("binding"), "{e}");
    }

    /// librdkafka's client-final repeats its nonce before the combined
    /// one (Kafka brokers accept that); the proof covers what it sent.
    #[test]
    fn a_client_nonce_repeated_in_front_is_accepted_as_kafka_brokers_do() {
        for m in Mechanism::ALL {
            let creds = Credentials::derive(m, b"tok", b"salty".to_vec(), ITERATIONS);
            let (ex, server_first) = first(&creds, b"n,,n=u,r=cn", "sn").expect("first");
            let without_proof = "c=biws,r=cncnsn";
            let salted = m.salted_password(b"tok", b"salty", ITERATIONS);
            let client_key = m.hmac(&salted, b"Client Key");
            let auth = format!("n=u,r=cn,{server_first},{without_proof}");
            let sig = m.hmac(&m.hash(&client_key), auth.as_bytes());
            let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
            let msg = format!("{without_proof},p={}", B64.encode(proof));
            assert!(last(&ex, &creds, msg.as_bytes()).is_ok(), "{}", m.name());
            // A nonce without the node's half is refused.
            let msg = msg.replace("r=cncnsn", "r=cncn");
            assert!(last(&ex, &creds, msg.as_bytes()).is_err());
        }
    }

    #[test]
    fn bad_first_messages_are_refused_with_a_reason() {
        let creds = Credentials::derive(Mechanism::Sha512, b"t", b"salt".to_vec(), 4096);
        for (msg, why) in [
            (&b"p=tls-unique,,n=u,r=abc"[..], "channel binding"),
            (b"n,,n=u,r=abc,tokenauth=true", "delegation tokens"),
            (b"n,,r=abc", "malformed"),
            (b"n,,n=u", "malformed"),
            (b"x,,n=u,r=abc", "malformed"),
            (b"n,,n=u,r=a c", "malformed"),
            (b"\xff", "UTF-8"),
            (b"", "malformed"),
        ] {
            let e = first(&creds, msg, "srv").unwrap_err();
            assert!(e.contains(why), "{msg:?}: {e}");
        }
        let (ex, _) = first(&creds, b"y,a=admin,n=u,r=abc", "srv").expect("first");
        for msg in [&b"c=eSxhPWFkbWluLA==,r=abcsrv"[..], b"c=,r=abcsrv,p=!!", b"\xff"] {
            assert!(last(&ex, &creds, msg).is_err(), "{msg:?}");
        }
    }

    proptest::proptest! {
        /// Whatever a client sends, in either round, is answered or refused
        /// without a panic; only a proof made from the token passes.
        #[test]
        fn arbitrary_messages_are_refused_without_a_panic(
            first_msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            final_msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            text in "[a-z=,]{0,40}",
        ) {
            let creds = Credentials::derive(Mechanism::Sha256, b"t", b"s".to_vec(), 1);
            let _ = first(&creds, &first_msg, "srv");
            let _ = first(&creds, text.as_bytes(), "srv");
            let (ex, _) = first(&creds, b"n,,n=u,r=c", "srv").expect("first");
            proptest::prop_assert!(last(&ex, &creds, &final_msg).is_err());
            let crafted = format!("c=biws,r=csrv,{},p=AAAA", text);
            proptest::prop_assert!(last(&ex, &creds, crafted.as_bytes()).is_err());
        }
    }

    #[test]
    fn derived_credentials_check_a_real_client_proof() {
        // A client computes its proof from the password alone.
        for m in Mechanism::ALL {
            let creds = credentials_for("the-token").expect("derive").remove(match m {
                Mechanism::Sha256 => 0,
                Mechanism::Sha512 => 1,
            });
            let (ex, server_first) =
                first(&creds, b"n,,n=anyone,r=cnonce", &server_nonce().expect("nonce")).expect("first");
            let salt_b64 = server_first
                .split(",s=")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .expect("salt");
            let salted = m.salted_password(b"the-token", &B64.decode(salt_b64).expect("b64"), ITERATIONS);
            let client_key = m.hmac(&salted, b"Client Key");
            let without_proof = format!("c=biws,r={}", ex.nonce);
            let auth = format!("n=anyone,r=cnonce,{server_first},{without_proof}");
            let sig = m.hmac(&m.hash(&client_key), auth.as_bytes());
            let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
            let final_msg = format!("{without_proof},p={}", B64.encode(proof));
            let server_final = last(&ex, &creds, final_msg.as_bytes()).expect("accepted");
            let server_key = m.hmac(&salted, b"Server Key");
            assert_eq!(
                server_final,
                format!("v={}", B64.encode(m.hmac(&server_key, auth.as_bytes())))
            );
        }
    }
}
