//! Stream sync: a node that missed a change of a replicated stream (it was
//! down or cut off when the change was asked) takes it from a node that
//! has it. Every `[cluster] settings_sync` each node tells every other what
//! it holds of its replicated streams (name, creation time, partition
//! count, settings stamp), and each answers what it holds newer of the
//! same streams: settings stamped newer ([`crate::log::meta::SettingsStamp`]
//! orders changes, so no node goes back to an older one), partitions
//! beyond the asker's count with their replicas (a count only grows), and
//! the streams it deleted (a node remembers the name and creation time of
//! the last [`crate::log::meta::DELETED_KEPT`] replicated streams it
//! deleted; a stream it never held is never named, so a missing stream is
//! no reason to delete). The asker applies them as changes from a peer,
//! so taking one twice, or from two nodes, changes nothing more. A peer
//! that does not answer (or runs a build without the route) is skipped
//! until the next round. Creating streams is not synced: a create some
//! node did not take is taken back.

use std::sync::Weak;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::settings::{PartitionsSpec, SettingsSpec};
use super::{Host, Inner};
use crate::log::meta::{DeletedStream, SettingsStamp};

/// The internal route that answers a [`SyncAsk`].
pub(crate) const ROUTE: &str = "/internal/streams/sync";

/// Largest answer read from a peer.
const ANSWER_CAP: usize = 32 * 1024 * 1024;

/// What a node holds of its replicated streams, as it asks another (as
/// every message of the sync, fields a node does not know are ignored, so
/// a later build may add some while nodes of both run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SyncAsk {
    pub streams: Vec<HeldStream>,
}

/// One replicated stream as the asking node holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeldStream {
    pub name: String,
    /// The stream's creation time: its identity across nodes.
    pub created_ms: u64,
    pub partitions: u32,
    #[serde(default)]
    pub stamp: SettingsStamp,
}

/// What the answering node holds newer of the streams asked about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SyncAnswer {
    /// Settings stamped newer than the asker's.
    pub settings: Vec<SettingsSpec>,
    /// Partitions beyond the asker's count, with their replicas.
    pub partitions: Vec<PartitionsSpec>,
    /// Streams the answering node deleted.
    #[serde(default)]
    pub deleted: Vec<DeletedStream>,
}

impl Host {
    /// What this node holds of its replicated streams, to ask another.
    fn held_streams(&self) -> SyncAsk {
        let log = &self.inner.log;
        let streams = log
            .stream_names()
            .into_iter()
            .filter_map(|name| {
                let m = log.stream_meta(&name).ok()?;
                m.replication.as_ref()?;
                Some(HeldStream {
                    created_ms: m.created_ms,
                    partitions: m.partitions,
                    stamp: m.settings_stamp,
                    name,
                })
            })
            .collect();
        SyncAsk { streams }
    }

    /// What this node holds newer than `ask` of the same replicated
    /// streams (another node's round of the sync).
    pub async fn sync_answer(&self, ask: &SyncAsk) -> SyncAnswer {
        let mut answer = SyncAnswer::default();
        let mut not_here = Vec::new();
        for held in &ask.streams {
            let m = self.inner.log.stream_meta(&held.name).ok();
            let Some((m, r)) = m
                .as_ref()
                .filter(|m| m.created_ms == held.created_ms)
                .and_then(|m| Some((m, m.replication.as_ref()?)))
            else {
                not_here.push(DeletedStream {
                    name: held.name.clone(),
                    created_ms: held.created_ms,
                });
                continue;
            };
            if m.settings_stamp > held.stamp {
                answer.settings.push(SettingsSpec {
                    name: held.name.clone(),
                    created_ms: m.created_ms,
                    settings: m.settings(),
                    stamp: m.settings_stamp,
                });
            }
            if m.partitions > held.partitions
                && let Some(added) = r.assignment.get(held.partitions as usize..)
            {
                answer.partitions.push(PartitionsSpec {
                    name: held.name.clone(),
                    created_ms: m.created_ms,
                    partitions: m.partitions,
                    assignment: added.to_vec(),
                });
            }
        }
        answer.deleted = self.inner.log.deleted_of(&not_here).await;
        answer
    }

    /// One round of the sync: tells every other node what this one holds
    /// and takes what they hold newer. Answers how many changes were
    /// taken.
    pub async fn sync_streams(&self) -> usize {
        let ask = self.held_streams();
        if ask.streams.is_empty() {
            return 0;
        }
        let mut taken = 0;
        for (node, answer) in self.post_to_peers(ROUTE, &ask, ANSWER_CAP).await {
            let theirs = match answer.map(|b| serde_json::from_slice::<SyncAnswer>(&b)) {
                Ok(Ok(theirs)) => theirs,
                Ok(Err(e)) => {
                    tracing::warn!(node, error = %e, "cluster: a node's sync answer did not parse");
                    continue;
                }
                Err(e) => {
                    tracing::debug!(node, error = %e, "cluster: no sync answer from a node this round");
                    continue;
                }
            };
            for gone in theirs.deleted {
                let took = self.delete_local(&gone.name, true, Some(gone.created_ms)).await;
                taken += usize::from(noted(took, &gone.name, node, "delete"));
            }
            for spec in theirs.partitions {
                let took = self.add_partitions_from_peer(&spec).await;
                taken += usize::from(noted(took.map(|_| ()), &spec.name, node, "partitions"));
            }
            for spec in theirs.settings {
                let took = self.set_settings_from_peer(&spec).await;
                taken += usize::from(noted(took.map(|_| ()), &spec.name, node, "settings"));
            }
        }
        taken
    }
}

/// Logs a change taken from `node` (or why it was not); whether it was.
fn noted(took: Result<(), crate::error::Error>, stream: &str, node: u32, what: &'static str) -> bool {
    crate::metrics::sync_change(what, took.is_ok());
    match took {
        Ok(()) => {
            tracing::info!(
                stream,
                from = node,
                what,
                "cluster: took a change this node missed from another node"
            );
            true
        }
        Err(e) => {
            tracing::warn!(stream, from = node, what, error = %e,
                "cluster: could not take a change this node missed from another node");
            false
        }
    }
}

/// Starts the sync's rounds, the first at once; they end when the node
/// stops (or is dropped).
pub(super) fn spawn(
    host: Weak<Inner>,
    every: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            let Some(inner) = host.upgrade() else {
                return;
            };
            Host { inner }.sync_streams().await;
        }
    })
}
