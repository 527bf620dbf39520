//! One Kafka connection: length-prefixed frames in, answers out, strictly in
//! order. Limits: a frame bigger than `kafka_max_frame_bytes` or a pause of
//! `kafka_idle_timeout` between requests (or inside one) closes the
//! connection; so does a frame `dispatch` cannot make sense of. With
//! `[tls]`, the connection is TLS from its first byte: the handshake must
//! finish within the idle timeout, and a client certificate verified in it
//! authenticates the connection as SASL with the token does.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

use super::Ctx;
use super::dispatch::{self, Reply, Step};

/// What a connection knows about its client.
pub(super) struct Conn {
    /// The address the client reached this node at (advertised by default).
    pub local: SocketAddr,
    /// The client's address.
    pub peer: SocketAddr,
    /// Passed SASL, showed a client certificate (`[tls] client_ca`), or no
    /// token is set on the node.
    pub authenticated: bool,
    /// Where SASL stands (SaslHandshake, then one or two SaslAuthenticate).
    pub sasl: Sasl,
}

/// The SASL exchange of a connection.
#[derive(Debug, Default)]
pub(super) enum Sasl {
    /// No handshake yet (or the last exchange ended).
    #[default]
    Idle,
    /// The handshake chose PLAIN.
    Plain,
    /// The handshake chose OAUTHBEARER.
    OAuthBearer,
    /// The handshake chose a SCRAM mechanism; the client-first comes next.
    ScramFirst(super::scram::Mechanism),
    /// Server-first sent; the client-final comes next.
    ScramFinal(Box<super::scram::Exchange>),
}

/// Why a connection ended.
enum End {
    Closed,
    Idle,
    Refused(String),
    Io(std::io::Error),
}

pub(super) async fn run(ctx: Arc<Ctx>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "kafka: connection without a local address");
            return;
        }
    };
    let mut conn = Conn {
        local,
        peer,
        authenticated: ctx.host.settings().auth_token.is_none(),
        sasl: Sasl::Idle,
    };
    crate::metrics::kafka_connections(1);
    // `[tls]` as last loaded: every connection is TLS then.
    let end = match ctx.host.tls_acceptor() {
        None => {
            let (read, write) = stream.into_split();
            serve(&ctx, &mut conn, read, write).await
        }
        Some(acceptor) => match tokio::time::timeout(ctx.idle, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => {
                // A verified client certificate stands for the token.
                if crate::node::client_certificate(stream.get_ref().1).is_some() {
                    conn.authenticated = true;
                }
                let (read, write) = tokio::io::split(stream);
                serve(&ctx, &mut conn, read, write).await
            }
            Ok(Err(e)) => End::Refused(format!("TLS handshake failed: {e}")),
            Err(_) => End::Idle,
        },
    };
    crate::metrics::kafka_connections(-1);
    match end {
        End::Closed => tracing::debug!(%peer, "kafka: connection closed by the client"),
        End::Idle => tracing::debug!(%peer, "kafka: idle connection closed"),
        End::Refused(why) => tracing::warn!(%peer, reason = %why, "kafka: connection closed"),
        End::Io(e) => tracing::debug!(%peer, error = %e, "kafka: connection failed"),
    }
}

/// Requests read ahead of their answers on one connection (clients
/// pipeline produce requests; each waits for its fsync).
const MAX_IN_FLIGHT: usize = 32;

/// Reads requests and starts them in order (`dispatch::handle`); a second
/// half awaits and writes their answers in the same order. Reading goes on
/// while earlier requests wait for durability, so one connection's
/// appends share group commits.
async fn serve(ctx: &Arc<Ctx>, conn: &mut Conn, read: impl AsyncRead + Unpin, write: impl AsyncWrite + Unpin) -> End {
    let (tx, rx) = tokio::sync::mpsc::channel(MAX_IN_FLIGHT);
    let reader = read_requests(ctx, conn, read, tx);
    let writer = write_answers(write, rx);
    tokio::pin!(reader, writer);
    tokio::select! {
        end = &mut writer => end,
        end = &mut reader => {
            // No more requests (the reader dropped its sender): answer the
            // ones under way, then report why reading stopped.
            let written = writer.await;
            match end {
                End::Closed => written,
                other => other,
            }
        }
    }
}

async fn read_requests(
    ctx: &Arc<Ctx>,
    conn: &mut Conn,
    read: impl AsyncRead + Unpin,
    tx: tokio::sync::mpsc::Sender<Step>,
) -> End {
    let mut read = BufReader::with_capacity(64 * 1024, read);
    loop {
        let frame = match tokio::time::timeout(ctx.idle, read_frame(ctx, &mut read)).await {
            Err(_) => return End::Idle,
            Ok(Err(e)) => return e,
            Ok(Ok(frame)) => frame,
        };
        let (frame, budget) = frame;
        let step = dispatch::handle(ctx, conn, frame).await;
        // Decoded and handed on (a produce is in the WAL queue, which
        // bounds its own bytes): the frame's share of the budget is back.
        drop(budget);
        if tx.send(step).await.is_err() {
            return End::Closed;
        }
    }
}

/// Writes one answer frame: its length, then its parts in order.
async fn write_frame(write: &mut (impl AsyncWrite + Unpin), parts: &[bytes::Bytes]) -> Result<(), End> {
    let total = parts.iter().map(|p| p.len()).fold(0usize, usize::saturating_add);
    let Ok(len) = i32::try_from(total) else {
        return Err(End::Refused(format!("an answer of {total} bytes does not fit a frame")));
    };
    write.write_all(&len.to_be_bytes()).await.map_err(End::Io)?;
    for part in parts {
        write.write_all(part).await.map_err(End::Io)?;
    }
    Ok(())
}

async fn write_answers(write: impl AsyncWrite + Unpin, mut rx: tokio::sync::mpsc::Receiver<Step>) -> End {
    let mut write = BufWriter::with_capacity(64 * 1024, write);
    loop {
        // Answers are flushed before anything waits: the next request, or
        // an answer that is not ready yet.
        let mut step = match rx.try_recv() {
            Ok(step) => step,
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                if let Err(e) = write.flush().await {
                    return End::Io(e);
                }
                match rx.recv().await {
                    Some(step) => step,
                    None => break,
                }
            }
        };
        let reply = match futures::FutureExt::now_or_never(&mut step) {
            Some(reply) => reply,
            None => {
                if let Err(e) = write.flush().await {
                    return End::Io(e);
                }
                step.await
            }
        };
        match reply {
            Reply::Send(answer) => {
                if let Err(end) = write_frame(&mut write, std::slice::from_ref(&answer)).await {
                    return end;
                }
            }
            Reply::SendParts(parts) => {
                if let Err(end) = write_frame(&mut write, &parts).await {
                    return end;
                }
            }
            Reply::Nothing => {}
            Reply::Close(why) => {
                let _ = write.flush().await;
                return End::Refused(why);
            }
        }
    }
    match write.flush().await {
        Ok(()) => End::Closed,
        Err(e) => End::Io(e),
    }
}

/// One frame's body (after its 4-byte length).
/// Frames at least this big reserve their size from the node's
/// `max_in_flight_bytes` before they are read.
const BUDGETED_FRAME: usize = 64 * 1024;

async fn read_frame(
    ctx: &Ctx,
    read: &mut BufReader<impl AsyncRead + Unpin>,
) -> Result<(Bytes, Option<crate::node::InFlight>), End> {
    let max = ctx.max_frame;
    let mut len = [0u8; 4];
    match read.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(End::Closed),
        Err(e) => return Err(End::Io(e)),
    }
    let len = i32::from_be_bytes(len);
    let len = match usize::try_from(len) {
        Ok(l) if l <= max => l,
        _ => {
            return Err(End::Refused(format!(
                "frame of {len} bytes (the limit, kafka_max_frame_bytes, is {max})"
            )));
        }
    };
    let budget = match len >= BUDGETED_FRAME {
        true => match ctx.host.reserve_in_flight(len as u64).await {
            Ok(b) => Some(b),
            Err(e) => return Err(End::Refused(e.to_string())),
        },
        false => None,
    };
    // A budgeted frame's size is reserved from `max_in_flight_bytes`, so
    // its buffer is taken whole (pages the client never sends are never
    // touched); a small one is small. Growing a big body by doubling would
    // copy it about once more.
    let mut body = Vec::with_capacity(len);
    let got = (&mut *read)
        .take(len as u64)
        .read_to_end(&mut body)
        .await
        .map_err(End::Io)?;
    if got < len {
        return Err(End::Refused(format!(
            "connection ended {got} bytes into a frame of {len}"
        )));
    }
    Ok((Bytes::from(body), budget))
}
