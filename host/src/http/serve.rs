//! Serving the HTTP API on a listener: bounded connections and requests,
//! timeouts for idle and slow clients, and a graceful, bounded drain.
//!
//! Invariants: at most `[http] max_connections` connections are open (more
//! wait in the accept queue, holding no descriptor of ours); a connection
//! that sends no complete request head within `idle_timeout` (a fresh one,
//! an idle keep-alive one, or a slow one) is closed; at most
//! `max_concurrent_requests` requests run at once, except the probes
//! (`/health`, `/ready`), which are never held back; a failed `accept`
//! (descriptors exhausted) pauses accepting briefly instead of spinning.
//! With `[tls]`, every connection is TLS: its handshake must finish within
//! `idle_timeout`, in the connection's own task. Each request of a
//! connection whose client showed a verified certificate carries
//! [`ClientCertified`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::error::Error;
use crate::node::Host;

/// Marks a request whose connection's client showed a certificate that
/// chains to `[tls] client_ca` (here, its leaf): it stands for the bearer
/// token, and tells which node an internal call comes from.
#[derive(Debug, Clone)]
pub struct ClientCertified(pub Arc<rustls_pki_types::CertificateDer<'static>>);

/// Paths answered whatever the request limit: liveness and readiness.
fn is_probe(path: &str) -> bool {
    path == "/health" || path == "/ready"
}

/// Serves the HTTP API of `host` on `listener` until `shutdown` resolves,
/// then drains in-flight requests (bounded by `shutdown_timeout`) and shuts
/// the host down (queued appends synced).
pub async fn serve(
    host: &Host,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let limits = host.settings().http.clone();
    let router = super::router(host.clone());
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let requests = Arc::new(Semaphore::new(limits.max_concurrent_requests));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off, the reserve stays free.
                    tracing::warn!(error = %e, "HTTP accept failed; pausing accepts");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let (router, requests) = (router.clone(), requests.clone());
        // `certified`: the certificate the connection's client showed.
        let service = move |certified: Option<Arc<rustls_pki_types::CertificateDer<'static>>>| {
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                let (router, requests) = (router.clone(), requests.clone());
                if let Some(cert) = &certified {
                    req.extensions_mut().insert(ClientCertified(cert.clone()));
                }
                async move {
                    let _slot = match is_probe(req.uri().path()) {
                        true => None,
                        false => requests.acquire_owned().await.ok(),
                    };
                    router.oneshot(req.map(axum::body::Body::new)).await
                }
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.idle_timeout)
            .keep_alive(true);
        // Per connection: `[tls]` files reloaded since apply to it.
        let (watcher, tls) = (graceful.watcher(), host.tls_acceptor());
        let handshake_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service(None)))
                        .await
                }
                // The handshake runs here, not in the accept loop: a client
                // that stalls it holds only its own connection, and no
                // longer than the idle timeout.
                Some(acceptor) => match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let certified = crate::node::client_certificate(stream.get_ref().1).map(Arc::new);
                        watcher
                            .watch(builder.serve_connection(TokioIo::new(stream), service(certified)))
                            .await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        Ok(())
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        Ok(())
                    }
                },
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            drop(permit);
        });
    }
    host.begin_stopping();
    let timeout = host.settings().shutdown_timeout;
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(timeout) => {
            tracing::warn!(?timeout, "in-flight requests did not finish in time; shutting down anyway");
        }
    }
    host.shutdown().await;
    Ok(())
}
