//! One Kafka connection: length-prefixed frames in, answers out, strictly in
//! order. Limits: a frame bigger than `kafka_max_frame_bytes` or a pause of
//! `kafka_idle_timeout` between requests (or inside one) closes the
//! connection; so does a frame `dispatch` cannot make sense of.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

use super::Ctx;
use super::dispatch::{self, Reply};

/// What a connection knows about its client.
pub(super) struct Conn {
    /// The address the client reached this node at (advertised by default).
    pub local: SocketAddr,
    /// Passed SASL (or no token is set on the node).
    pub authenticated: bool,
    /// A SaslHandshake chose PLAIN; SaslAuthenticate may follow.
    pub sasl_ready: bool,
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
        authenticated: ctx.host.settings().auth_token.is_none(),
        sasl_ready: false,
    };
    crate::metrics::kafka_connections(1);
    let end = serve(&ctx, &mut conn, stream).await;
    crate::metrics::kafka_connections(-1);
    match end {
        End::Closed => tracing::debug!(%peer, "kafka: connection closed by the client"),
        End::Idle => tracing::debug!(%peer, "kafka: idle connection closed"),
        End::Refused(why) => tracing::warn!(%peer, reason = %why, "kafka: connection closed"),
        End::Io(e) => tracing::debug!(%peer, error = %e, "kafka: connection failed"),
    }
}

async fn serve(ctx: &Ctx, conn: &mut Conn, stream: TcpStream) -> End {
    let (read, write) = stream.into_split();
    let mut read = BufReader::with_capacity(64 * 1024, read);
    let mut write = BufWriter::with_capacity(64 * 1024, write);
    loop {
        let frame = match tokio::time::timeout(ctx.idle, read_frame(&mut read, ctx.max_frame)).await {
            Err(_) => return End::Idle,
            Ok(Err(e)) => return e,
            Ok(Ok(frame)) => frame,
        };
        match dispatch::handle(ctx, conn, frame).await {
            Reply::Send(answer) => {
                let len = match i32::try_from(answer.len()) {
                    Ok(l) => l,
                    Err(_) => return End::Refused(format!("an answer of {} bytes does not fit a frame", answer.len())),
                };
                let written = async {
                    write.write_all(&len.to_be_bytes()).await?;
                    write.write_all(&answer).await?;
                    write.flush().await
                };
                if let Err(e) = written.await {
                    return End::Io(e);
                }
            }
            Reply::Nothing => {}
            Reply::Close(why) => return End::Refused(why),
        }
    }
}

/// One frame's body (after its 4-byte length).
async fn read_frame(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, max: usize) -> Result<Bytes, End> {
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
    // Grows as bytes arrive: announcing a big frame costs nothing until sent.
    let mut body = Vec::with_capacity(len.min(64 * 1024));
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
    Ok(Bytes::from(body))
}
