//! One group member and the reply channels of waiting requests.
//!
//! A member owns at most one waiting join and one waiting sync; whoever
//! takes a reply channel out of a member answers it (dropping one unanswered
//! resolves the request as `CoordinatorNotAvailable`).

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::error::GroupError;
use super::types::{JoinRequest, JoinResponse, SyncResponse};

/// Where a waiting request's answer goes.
pub(super) type Reply<T> = oneshot::Sender<Result<T, GroupError>>;
/// Where a waiting request's answer comes from.
pub(super) type Answer<T> = oneshot::Receiver<Result<T, GroupError>>;

/// An answer available at once.
pub(super) fn ready<T>(result: Result<T, GroupError>) -> Answer<T> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(result);
    rx
}

/// `now + d`, saturating far in the future instead of overflowing.
pub(super) fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

pub(super) struct Member {
    pub(super) id: String,
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) assignment: Bytes,
    /// Last join, sync, heartbeat or commit check.
    pub(super) last_seen: Instant,
    /// Join order: the leader falls back to the earliest.
    pub(super) seq: u64,
    pub(super) join: Option<Reply<JoinResponse>>,
    pub(super) sync: Option<Reply<SyncResponse>>,
}

impl Member {
    pub(super) fn new(id: String, req: JoinRequest, seq: u64, now: Instant, join: Reply<JoinResponse>) -> Member {
        Member {
            id,
            instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            protocols: req.protocols,
            assignment: Bytes::new(),
            last_seen: now,
            seq,
            join: Some(join),
            sync: None,
        }
    }

    pub(super) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub(super) fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    /// Answers any waiting join and sync with `err`.
    pub(super) fn fail_waiters(&mut self, err: &GroupError) {
        if let Some(tx) = self.join.take() {
            let _ = tx.send(Err(err.clone()));
        }
        if let Some(tx) = self.sync.take() {
            let _ = tx.send(Err(err.clone()));
        }
    }

    /// A member awaiting a join or sync answer is alive by definition: the
    /// rebalance timeout or the leader's session bounds that wait.
    pub(super) fn expired(&self, now: Instant) -> bool {
        self.join.is_none() && self.sync.is_none() && after(self.last_seen, self.session_timeout) <= now
    }
}
