//! One Kafka connection without a socket: frames go through the same
//! dispatcher and handlers a TCP connection's do, answers come back as
//! bytes. For the fuzz target that runs requests through the handlers
//! (`fuzz_api::kafka_handle`) and its corpus replay; not an API.
//!
//! Owns nothing but the listener context and the connection state it
//! builds. Invariant: requests are started and answered one at a time, in
//! order, as a connection with one request in flight would see them.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;

use super::Ctx;
use super::conn::{Conn, Sasl};
use super::dispatch::{self, Reply};
use crate::error::Error;
use crate::node::Host;

/// What the node did with one request.
#[derive(Debug)]
pub enum Outcome {
    /// It answered: the response header and body, without the length.
    Answer(Bytes),
    /// It answered nothing (Produce with acks=0).
    Nothing,
    /// It closed the connection, for this reason.
    Closed(String),
}

/// A client connection of a listener of `host`.
pub struct Session {
    ctx: Arc<Ctx>,
    conn: Conn,
}

impl Session {
    /// A connection to a fresh listener of `host` with the node's fetch
    /// cache settings; `authenticated` as if it had shown a client
    /// certificate (SASL exchanges still run against the node's token),
    /// else only when the node has no token.
    pub fn new(host: &Host, authenticated: bool) -> Result<Session, Error> {
        let cache_bytes = host.settings().kafka_fetch_cache_bytes.as_u64();
        let ctx = Arc::new(Ctx::new(host, cache_bytes)?);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 9092));
        let conn = Conn {
            local: addr,
            peer: SocketAddr::from((Ipv4Addr::LOCALHOST, 40000)),
            authenticated: authenticated || host.settings().auth_token.is_none(),
            sasl: Sasl::Idle,
        };
        Ok(Session { ctx, conn })
    }

    /// Runs one request frame (without its length prefix) to its answer.
    pub async fn request(&mut self, frame: Bytes) -> Outcome {
        let step = dispatch::handle(&self.ctx, &mut self.conn, frame).await;
        match step.await {
            Reply::Send(bytes) => Outcome::Answer(bytes),
            Reply::SendParts(parts) => {
                let mut joined = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
                for part in &parts {
                    joined.extend_from_slice(part);
                }
                Outcome::Answer(Bytes::from(joined))
            }
            Reply::Nothing => Outcome::Nothing,
            Reply::Close(why) => Outcome::Closed(why),
        }
    }
}
