//! TLS for the listeners, and certificate rotation without a restart: a
//! task reads the `[tls]` files every `reload_interval` and, when they
//! changed and load, swaps them in for new connections on both listeners
//! (each takes the configuration in use when it is accepted,
//! [`Host::tls_acceptor`]) and for calls to peers.
//!
//! Invariants: connections already open keep the configuration they were
//! accepted with; a change that does not load leaves the last good
//! configuration in use and is reported once (log and
//! `sluice_tls_reloads_total{result="error"}`) until the files change
//! again; the task stops when the node starts stopping.

use std::sync::Arc;

use super::Host;
use crate::cluster::Cluster;
use crate::tls::LiveTls;

impl Host {
    /// The server side of `[tls]` for a connection just accepted (`None`:
    /// plain TCP): the files as last loaded.
    pub fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.inner
            .tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.current().server.clone()))
    }
}

/// Certificates expiring within this long are warned about at each load.
const EXPIRY_WARNING: i64 = 14 * 24 * 3600;

/// Publishes when the loaded certificates expire, and warns about any
/// expiring soon (or expired).
pub(super) fn publish_expiries(tls: &crate::tls::Tls) {
    let now = i64::try_from(crate::fsutil::now_ms() / 1000).unwrap_or(i64::MAX);
    for (file, at) in &tls.expiries {
        crate::metrics::tls_certificate_expiry(file, *at);
        let left = at.saturating_sub(now);
        if left < EXPIRY_WARNING {
            tracing::warn!(file = %file, days_left = left / 86_400, "tls: a certificate expires soon or has expired; rotate it");
        }
    }
}

/// Starts the task (nothing to do without `[tls]`).
pub(super) fn spawn(
    tls: Arc<LiveTls>,
    every: std::time::Duration,
    cluster: Option<Arc<Cluster>>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            let checking = tls.clone();
            match crate::task::blocking(move || checking.reload_if_changed())
                .await
                .and_then(|r| r)
            {
                Ok(false) => {}
                Ok(true) => {
                    let peers = cluster.as_ref().map(|c| c.use_tls(&tls.current().client)).transpose();
                    match peers {
                        Ok(_) => {
                            publish_expiries(&tls.current());
                            tracing::info!("tls: certificates reloaded; new connections use them");
                            crate::metrics::tls_reload(true);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "tls: reloaded for the listeners, but not for calls to peers");
                            crate::metrics::tls_reload(false);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tls: the files changed but do not load; the last good ones stay in use");
                    crate::metrics::tls_reload(false);
                }
            }
        }
    })
}
