//! The Kafka protocol face: a TCP listener that speaks the Kafka wire
//! protocol to existing clients (librdkafka, the Java client, kafka-python),
//! calling the node facade only, as the HTTP face does.
//!
//! Owns: accepting connections (at most `kafka_max_connections` open; more
//! wait in the accept queue), one task per connection, and stopping when
//! the node stops. Invariants: a connection's requests are answered strictly
//! in order; a frame that cannot be read or decoded closes that connection
//! only; nothing here outlives a connection except the listener's fetch
//! cache (`cache.rs`), which holds copies of stored records, never the only
//! copy.
//!
//! What is supported, and the client settings known to work, are listed in
//! `docs/KAFKA.md`.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::error::{Error, ErrorKind};
use crate::node::Host;

mod apis;
pub(crate) mod batch;
mod cache;
mod compress;
mod conn;
pub(crate) mod dispatch;
mod encode;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod harness;
pub(crate) mod legacy;
mod scram;
mod splice;

/// What every connection of a listener shares.
pub(crate) struct Ctx {
    host: Host,
    /// This node's broker id: its cluster node id, or 0 on a single node.
    node_id: i32,
    max_frame: usize,
    idle: Duration,
    /// Record batches ready to send (`kafka_fetch_cache_bytes`).
    cache: cache::FetchCache,
    /// SCRAM keys derived from the token, one per mechanism (none without
    /// a token).
    scram: Vec<scram::Credentials>,
    /// Consumers' fetch sessions (KIP-227).
    fetch_sessions: apis::fetch_session::FetchSessions,
    /// Topic ids to names (`apis::topic_ids`).
    topic_ids: apis::topic_ids::TopicIds,
}

impl Ctx {
    /// A listener's shared context, with a fetch cache of
    /// `fetch_cache_bytes` (0: none).
    fn new(host: &Host, fetch_cache_bytes: u64) -> Result<Ctx, Error> {
        let settings = host.settings();
        Ok(Ctx {
            node_id: settings
                .cluster
                .as_ref()
                .map_or(0, |c| i32::try_from(c.node_id).unwrap_or(i32::MAX)),
            max_frame: usize::try_from(settings.kafka_max_frame_bytes.as_u64()).unwrap_or(usize::MAX),
            idle: settings.kafka_idle_timeout,
            cache: cache::FetchCache::new(usize::try_from(fetch_cache_bytes).unwrap_or(usize::MAX)),
            scram: match &settings.auth_token {
                Some(token) => scram::credentials_for(token).map_err(Error::invalid)?,
                None => Vec::new(),
            },
            fetch_sessions: apis::fetch_session::FetchSessions::default(),
            topic_ids: apis::topic_ids::TopicIds::default(),
            host: host.clone(),
        })
    }
}

/// Serves the Kafka protocol for `host` on `listener` until the node starts
/// stopping ([`Host::begin_stopping`], e.g. by the HTTP face's drain). Open
/// connections are closed then; their in-flight requests end with them.
pub async fn serve(host: Host, listener: TcpListener) -> Result<(), Error> {
    let cache_bytes = host.settings().kafka_fetch_cache_bytes.as_u64();
    serve_with_cache(host, listener, cache_bytes).await
}

/// How often a listener's fetch cache forgets the partitions of deleted
/// streams.
const CACHE_SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Forgets cached partitions of streams that no longer exist, until the
/// listener (its context) is gone.
async fn sweep_cache(ctx: std::sync::Weak<Ctx>) {
    let mut tick = tokio::time::interval(CACHE_SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(ctx) = ctx.upgrade() else {
            return;
        };
        if ctx.cache.bytes() == 0 {
            continue;
        }
        let live: std::collections::HashSet<u32> = ctx.host.list_streams().iter().map(|s| s.id).collect();
        ctx.cache.retain_streams(|id| live.contains(&id));
    }
}

/// [`serve`] with a fetch cache of `fetch_cache_bytes` instead of the
/// node's `kafka_fetch_cache_bytes` (0: none). Each listener has its own
/// cache, filled by the batches produced through it.
pub async fn serve_with_cache(host: Host, listener: TcpListener, fetch_cache_bytes: u64) -> Result<(), Error> {
    let settings = host.settings();
    let ctx = Arc::new(Ctx::new(&host, fetch_cache_bytes)?);
    if fetch_cache_bytes > 0 {
        tokio::spawn(sweep_cache(Arc::downgrade(&ctx)));
    }
    let permits = Arc::new(tokio::sync::Semaphore::new(settings.kafka_max_connections));
    let mut connections = tokio::task::JoinSet::new();
    let stopped = host.stopped();
    tokio::pin!(stopped);
    loop {
        let permit = tokio::select! {
            _ = &mut stopped => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = &mut stopped => break,
            a = listener.accept() => a,
        };
        // Reap finished connection tasks so the set stays small.
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok((stream, peer)) => {
                let ctx = ctx.clone();
                connections.spawn(async move {
                    conn::run(ctx, stream, peer).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of descriptors and the like: wait a little, keep serving.
                tracing::warn!(error = %e, "kafka: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    connections.shutdown().await;
    Ok(())
}

/// Binds `addr` for the Kafka listener, with an error that names it.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|e| {
        Error::new(
            ErrorKind::Invalid,
            "invalid_config",
            format!("cannot listen for Kafka clients on {addr}: {e} (set kafka_listen / --kafka-listen, or `off`)"),
        )
    })
}
