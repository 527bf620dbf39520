//! SASL against the node's token: PLAIN (any user name, the token as the
//! password) and SCRAM-SHA-256/512 (the same, proven without sending it;
//! `kafka/scram.rs`). Without a token every connection is authenticated
//! from the start: PLAIN then succeeds with any password, and SCRAM, which
//! needs a password the node knows, is refused. A failed authentication is
//! answered, then the client closes the connection; the exchange starts
//! over only with a new handshake.

use kafka_protocol::messages::{
    ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};

use super::super::Ctx;
use super::super::conn::{Conn, Sasl};
use super::super::error::codes;
use super::super::scram::{self, Mechanism};
use super::{Answer, str_bytes};

const PLAIN: &str = "PLAIN";

pub(super) fn handshake(conn: &mut Conn, r: SaslHandshakeRequest) -> SaslHandshakeResponse {
    let mut out = SaslHandshakeResponse::default();
    out.mechanisms = std::iter::once(PLAIN)
        .chain(Mechanism::ALL.map(Mechanism::name))
        .map(str_bytes)
        .collect();
    let chosen = r.mechanism.as_str();
    conn.sasl = match (chosen, Mechanism::named(chosen)) {
        (PLAIN, _) => Sasl::Plain,
        (_, Some(m)) => Sasl::ScramFirst(m),
        (_, None) => {
            out.error_code = codes::unsupported_sasl_mechanism();
            Sasl::Idle
        }
    };
    out
}

fn answer(out: SaslAuthenticateResponse) -> Answer {
    Answer::Respond(Box::new(ResponseKind::SaslAuthenticate(out)))
}

fn failed(mut out: SaslAuthenticateResponse, why: &str) -> Answer {
    out.error_code = codes::sasl_failed();
    out.error_message = Some(str_bytes(why));
    answer(out)
}

pub(super) fn authenticate(ctx: &Ctx, conn: &mut Conn, r: SaslAuthenticateRequest) -> Answer {
    let out = SaslAuthenticateResponse::default();
    match std::mem::take(&mut conn.sasl) {
        Sasl::Idle => {
            let mut out = out;
            out.error_code = codes::illegal_sasl_state();
            out.error_message = Some(str_bytes(
                "SaslHandshake (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) comes first",
            ));
            answer(out)
        }
        Sasl::Plain => plain(ctx, conn, &r.auth_bytes, out),
        Sasl::ScramFirst(m) => {
            let Some(creds) = ctx.scram.iter().find(|c| c.mechanism() == m) else {
                return failed(out, "this node has no token: connect without SASL");
            };
            let nonce = match scram::server_nonce() {
                Ok(n) => n,
                Err(e) => return failed(out, &e),
            };
            match scram::first(creds, &r.auth_bytes, &nonce) {
                Ok((exchange, server_first)) => {
                    conn.sasl = Sasl::ScramFinal(Box::new(exchange));
                    let mut out = out;
                    out.auth_bytes = server_first.into_bytes().into();
                    answer(out)
                }
                Err(why) => failed(out, &why),
            }
        }
        Sasl::ScramFinal(exchange) => {
            let Some(creds) = ctx.scram.iter().find(|c| c.mechanism() == exchange.mechanism) else {
                return failed(out, "this node has no token: connect without SASL");
            };
            match scram::last(&exchange, creds, &r.auth_bytes) {
                Ok(server_final) => {
                    conn.authenticated = true;
                    let mut out = out;
                    out.auth_bytes = server_final.into_bytes().into();
                    answer(out)
                }
                Err(why) => failed(out, &why),
            }
        }
    }
}

/// PLAIN: authzid NUL authcid NUL password.
fn plain(ctx: &Ctx, conn: &mut Conn, auth: &[u8], out: SaslAuthenticateResponse) -> Answer {
    let mut parts = auth.split(|b| *b == 0);
    let password = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(p), None) => p,
        _ => return failed(out, "malformed SASL PLAIN message"),
    };
    if ctx.host.token_matches(password) {
        conn.authenticated = true;
        answer(out)
    } else {
        // Answered; the client closes on this error (librdkafka, the Java client).
        failed(out, "wrong password: the password is the node's auth token")
    }
}
