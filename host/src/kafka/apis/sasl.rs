//! SASL PLAIN against the node's token: any user name, the token as the
//! password. Without a token every connection is authenticated from the
//! start and SASL succeeds with any password. A failed authentication is
//! answered, then the connection is closed.

use kafka_protocol::messages::{
    ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};

use super::super::Ctx;
use super::super::conn::Conn;
use super::super::error::codes;
use super::{Answer, str_bytes};

pub(super) fn handshake(conn: &mut Conn, r: SaslHandshakeRequest) -> SaslHandshakeResponse {
    let mut out = SaslHandshakeResponse::default();
    out.mechanisms = vec![str_bytes("PLAIN")];
    if r.mechanism.as_str() == "PLAIN" {
        conn.sasl_ready = true;
    } else {
        out.error_code = codes::unsupported_sasl_mechanism();
    }
    out
}

pub(super) fn authenticate(ctx: &Ctx, conn: &mut Conn, r: SaslAuthenticateRequest) -> Answer {
    let mut out = SaslAuthenticateResponse::default();
    if !conn.sasl_ready {
        out.error_code = codes::illegal_sasl_state();
        out.error_message = Some(str_bytes("SaslHandshake with mechanism PLAIN comes first"));
        return Answer::Respond(Box::new(ResponseKind::SaslAuthenticate(out)));
    }
    conn.sasl_ready = false;
    // PLAIN: authzid NUL authcid NUL password.
    let mut parts = r.auth_bytes.split(|b| *b == 0);
    let password = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(p), None) => p,
        _ => {
            out.error_code = codes::sasl_failed();
            out.error_message = Some(str_bytes("malformed SASL PLAIN message"));
            return Answer::Respond(Box::new(ResponseKind::SaslAuthenticate(out)));
        }
    };
    if ctx.host.token_matches(password) {
        conn.authenticated = true;
        Answer::Respond(Box::new(ResponseKind::SaslAuthenticate(out)))
    } else {
        out.error_code = codes::sasl_failed();
        out.error_message = Some(str_bytes("wrong password: the password is the node's auth token"));
        // Answered; the client closes on this error (librdkafka, the Java client).
        Answer::Respond(Box::new(ResponseKind::SaslAuthenticate(out)))
    }
}
