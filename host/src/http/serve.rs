//! Serving the HTTP API on a listener, with a graceful, bounded drain.

use std::future::Future;

use tokio::net::TcpListener;

use crate::error::{Error, ErrorKind};
use crate::node::Host;

/// Serves the HTTP API of `host` on `listener` until `shutdown` resolves,
/// then drains in-flight requests (bounded by `shutdown_timeout`) and shuts
/// the host down (queued appends synced).
pub async fn serve(
    host: &Host,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stopping = host.clone();
    let server = axum::serve(listener, super::router(host.clone())).with_graceful_shutdown(async move {
        shutdown.await;
        stopping.begin_stopping();
        let _ = stop_tx.send(());
    });
    let timeout = host.settings().shutdown_timeout;
    let mut server = std::pin::pin!(server.into_future());
    let result = tokio::select! {
        r = &mut server => r,
        _ = async { let _ = stop_rx.await; tokio::time::sleep(timeout).await } => {
            tracing::warn!(?timeout, "in-flight requests did not finish in time; shutting down anyway");
            Ok(())
        }
    };
    host.shutdown().await;
    result.map_err(|e| Error::new(ErrorKind::Internal, "io_error", format!("HTTP server failed: {e}")))
}
