//! SASL against the node's token: PLAIN (any user name, the token as the
//! password), SCRAM-SHA-256/512 (the same, proven without sending it;
//! `kafka/scram.rs`) and OAUTHBEARER (RFC 7628: the token as the bearer
//! token, which clients take from their token callback). Without a token
//! every connection is authenticated from the start: PLAIN and OAUTHBEARER
//! then succeed with any password or bearer token, and SCRAM, which needs
//! a password the node knows, is refused. A failed authentication is
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
const OAUTHBEARER: &str = "OAUTHBEARER";

pub(super) fn handshake(conn: &mut Conn, r: SaslHandshakeRequest) -> SaslHandshakeResponse {
    let mut out = SaslHandshakeResponse::default();
    out.mechanisms = [PLAIN, OAUTHBEARER]
        .into_iter()
        .chain(Mechanism::ALL.map(Mechanism::name))
        .map(str_bytes)
        .collect();
    let chosen = r.mechanism.as_str();
    conn.sasl = match (chosen, Mechanism::named(chosen)) {
        (PLAIN, _) => Sasl::Plain,
        (OAUTHBEARER, _) => Sasl::OAuthBearer,
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
                "SaslHandshake (PLAIN, OAUTHBEARER, SCRAM-SHA-256 or SCRAM-SHA-512) comes first",
            ));
            answer(out)
        }
        Sasl::Plain => plain(ctx, conn, &r.auth_bytes, out),
        Sasl::OAuthBearer => match bearer_token(&r.auth_bytes) {
            Ok(token) if ctx.host.token_matches(token) => {
                conn.authenticated = true;
                answer(out)
            }
            Ok(_) => failed(out, "wrong bearer token: the bearer token is the node's auth token"),
            Err(why) => failed(out, why),
        },
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

/// The bearer token of an OAUTHBEARER client's first message (RFC 7628):
/// a GS2 header (`n,` and an optional `a=` authorization id, then `,`),
/// key=value pairs each ended by 0x01, one of them `auth=Bearer <token>`,
/// and a closing 0x01.
fn bearer_token(msg: &[u8]) -> Result<&[u8], &'static str> {
    const MALFORMED: &str = "malformed SASL OAUTHBEARER message";
    let rest = msg.strip_prefix(b"n,").ok_or(MALFORMED)?;
    let comma = rest.iter().position(|b| *b == b',').ok_or(MALFORMED)?;
    let authzid = &rest[..comma];
    if !(authzid.is_empty() || authzid.starts_with(b"a=")) {
        return Err(MALFORMED);
    }
    // Each pair ends with 0x01, and one more 0x01 closes the message.
    let pairs = rest[comma + 1..]
        .strip_prefix(b"\x01")
        .and_then(|p| p.strip_suffix(b"\x01\x01"))
        .ok_or(MALFORMED)?;
    let mut token = None;
    for pair in pairs.split(|b| *b == 0x01) {
        let eq = pair.iter().position(|b| *b == b'=').ok_or(MALFORMED)?;
        if &pair[..eq] == b"auth" {
            let value = &pair[eq + 1..];
            let scheme = value.get(..7).ok_or("the auth value is not a Bearer token")?;
            if !scheme.eq_ignore_ascii_case(b"bearer ") || token.is_some() {
                return Err("the auth value is not one Bearer token");
            }
            token = Some(&value[7..]);
        }
    }
    token
        .filter(|t| !t.is_empty())
        .ok_or("no Bearer token in the auth value")
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn oauthbearer_messages_give_their_bearer_token_or_a_reason() {
        let ok: &[(&[u8], &[u8])] = &[
            (b"n,,\x01auth=Bearer tok\x01\x01", b"tok"),
            (
                b"n,a=user,\x01host=h\x01auth=bearer t0k.x-y\x01port=9\x01\x01",
                b"t0k.x-y",
            ),
        ];
        for (msg, token) in ok {
            assert_eq!(bearer_token(msg), Ok(*token), "{msg:?}");
        }
        let bad: &[&[u8]] = &[
            b"",
            b"y,,\x01auth=Bearer t\x01\x01",
            b"n,x=1,\x01auth=Bearer t\x01\x01",
            b"n,,auth=Bearer t\x01\x01",
            b"n,,\x01auth=Bearer t\x01",
            b"n,,\x01host=h\x01\x01",
            b"n,,\x01auth=Basic dXNlcg==\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"n,,\x01auth=Bearer a\x01auth=Bearer b\x01\x01",
            b"n,,\x01novalue\x01\x01",
        ];
        for msg in bad {
            assert!(bearer_token(msg).is_err(), "{msg:?}");
        }
    }
}
