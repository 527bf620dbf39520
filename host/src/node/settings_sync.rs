//! Settings sync: a node that missed a change of a replicated stream's
//! settings (it was down or cut off when the change was asked) takes it
//! from a node that has it. Every `[cluster] settings_sync` each node asks
//! every other for the stamped settings of the replicated streams it
//! holds, and applies those stamped newer than its own for the same stream
//! (same name and creation time). Stamps order changes
//! ([`crate::log::meta::SettingsStamp`]), so taking a change twice, or from
//! two nodes, changes nothing more, and no node goes back to an older one.
//! A peer that does not answer (or runs a build without the route) is
//! skipped until the next round.

use std::sync::Weak;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::settings::SettingsSpec;
use super::{Host, Inner};

/// The internal route that answers a node's [`StampedSettings`].
pub(crate) const ROUTE: &str = "/internal/streams/settings/stamped";

/// Largest answer read from a peer (an entry is well under 1 KiB; a node
/// holds at most `max_streams` streams).
const ANSWER_CAP: usize = 32 * 1024 * 1024;

/// The settings of a node's replicated streams that changed by a stamped
/// change, as another node asks for them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StampedSettings {
    pub streams: Vec<SettingsSpec>,
}

impl Host {
    /// Every replicated stream here whose settings changed by a stamped
    /// change: its settings and their stamp.
    pub fn stamped_settings(&self) -> StampedSettings {
        let log = &self.inner.log;
        let mut streams: Vec<SettingsSpec> = log
            .stream_names()
            .into_iter()
            .filter_map(|name| {
                let m = log.stream_meta(&name).ok()?;
                (m.replication.is_some() && !m.settings_stamp.is_unset()).then(|| SettingsSpec {
                    created_ms: m.created_ms,
                    settings: m.settings(),
                    stamp: m.settings_stamp,
                    name,
                })
            })
            .collect();
        streams.sort_by(|a, b| a.name.cmp(&b.name));
        StampedSettings { streams }
    }

    /// One round of the sync: asks every other node for its stamped
    /// settings and takes those newer than this node's. Answers how many
    /// streams' settings changed here.
    pub async fn sync_settings(&self) -> usize {
        let Some(cluster) = &self.inner.cluster else {
            return 0;
        };
        let timeout = cluster.settings().peer_timeout;
        let others = cluster.peer_ids();
        let ask = serde_json::json!({});
        let calls = others
            .iter()
            .map(|n| cluster.post_capped(*n, ROUTE, &ask, ANSWER_CAP, timeout));
        let answers = futures::future::join_all(calls).await;
        let mut taken = 0;
        for (node, answer) in others.into_iter().zip(answers) {
            let theirs = match answer.map(|b| serde_json::from_slice::<StampedSettings>(&b)) {
                Ok(Ok(theirs)) => theirs,
                Ok(Err(e)) => {
                    tracing::warn!(node, error = %e, "cluster: a node's stamped settings did not parse");
                    continue;
                }
                Err(e) => {
                    tracing::debug!(node, error = %e, "cluster: no stamped settings from a node this round");
                    continue;
                }
            };
            for spec in theirs.streams {
                let Ok(mine) = self.inner.log.stream_meta(&spec.name) else {
                    continue;
                };
                if mine.created_ms != spec.created_ms || mine.replication.is_none() || spec.stamp <= mine.settings_stamp
                {
                    continue;
                }
                match self.set_settings_from_peer(&spec).await {
                    Ok(_) => {
                        taken += 1;
                        tracing::info!(stream = %spec.name, from = node, version = spec.stamp.version,
                            "cluster: took a stream's newer settings from another node (a change this node missed)");
                    }
                    Err(e) => {
                        tracing::warn!(stream = %spec.name, from = node, error = %e,
                            "cluster: could not take a stream's newer settings from another node");
                    }
                }
            }
        }
        taken
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
            Host { inner }.sync_settings().await;
        }
    })
}
