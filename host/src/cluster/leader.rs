//! The leader's side: answering followers' fetches, and tracking each
//! follower's log end to keep the in-sync set and the high watermark.
//!
//! Invariants:
//! * no answer carries more than the follower's `max_bytes` of data: a
//!   first batch larger than that goes as numbered fragments of at most
//!   `max_bytes`, fixed by the batch, so a restarted follower can start over;
//! * a follower's fetch offset is what it holds durably, so the high
//!   watermark (the least log end over the in-sync set, the leader's own
//!   included) only counts records on every in-sync replica's disk;
//! * the high watermark of a leadership never moves back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Cluster;
use super::error::ClusterError;
use super::wire::{BatchHead, FetchHeader, FetchRequest, FetchResponse, Fragment, MAX_BATCHES};
use crate::log::replica::ReplicaView;

/// The answer header of what this node holds of `view`, before data.
fn header_of(view: &ReplicaView) -> FetchHeader {
    let lead = &view.state.leadership;
    FetchHeader {
        leader: lead.leader,
        leader_epoch: lead.epoch,
        history: lead.history.clone(),
        high_watermark: view.state.high_watermark,
        log_start: view.log_start,
        log_end: view.log_end,
        ..FetchHeader::default()
    }
}

/// A raw read of a replica's batches (`/internal/replication/read`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReadRequest {
    pub stream: String,
    pub partition: u32,
    pub offset: u64,
    pub max_bytes: u64,
}

/// One follower as its leader sees it.
#[derive(Debug, Clone, Copy)]
pub struct FollowerState {
    /// Its log end, from its last fetch.
    pub log_end: u64,
    /// When it last asked for an offset at or past the leader's end.
    pub caught_up: Instant,
    pub last_fetch: Option<Instant>,
    /// Its log start, from its last fetch (`None`: it did not say).
    pub log_start: Option<u64>,
}

/// A led partition's followers under one epoch.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub epoch: u32,
    pub followers: BTreeMap<u32, FollowerState>,
    pub high_watermark: u64,
}

impl Tracker {
    /// A new leadership: every follower counts as in sync until it lags
    /// for `replica_lag_max` (as a restarted leader cannot know better).
    pub fn new(view: &ReplicaView, me: u32, now: Instant) -> Tracker {
        let followers = view
            .replicas
            .iter()
            .filter(|r| **r != me)
            .map(|r| {
                (
                    *r,
                    FollowerState {
                        log_end: 0,
                        caught_up: now,
                        last_fetch: None,
                        log_start: None,
                    },
                )
            })
            .collect();
        Tracker {
            epoch: view.state.leadership.epoch,
            followers,
            high_watermark: view.state.high_watermark,
        }
    }

    pub fn in_sync(&self, me: u32, now: Instant, lag_max: Duration) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .followers
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.caught_up) <= lag_max)
            .map(|(r, _)| *r)
            .collect();
        v.push(me);
        v.sort_unstable();
        v
    }

    /// Notes a fetch and returns the high watermark (never lower than before).
    pub fn fetched(&mut self, replica: u32, offset: u64, log_end: u64, now: Instant) {
        if let Some(f) = self.followers.get_mut(&replica) {
            f.log_end = offset;
            f.last_fetch = Some(now);
            if offset >= log_end {
                f.caught_up = now;
            }
        }
    }

    /// Notes the log start a follower's fetch reported.
    pub fn started(&mut self, replica: u32, log_start: Option<u64>) {
        if let Some(f) = self.followers.get_mut(&replica) {
            f.log_start = log_start;
        }
    }

    /// The in-sync followers whose log starts below `offset` (or that did
    /// not say where theirs starts).
    pub fn starting_below(&self, me: u32, offset: u64, now: Instant, lag_max: Duration) -> Vec<u32> {
        let in_sync = self.in_sync(me, now, lag_max);
        self.followers
            .iter()
            .filter(|(r, f)| in_sync.contains(r) && f.log_start.is_none_or(|s| s < offset))
            .map(|(r, _)| *r)
            .collect()
    }

    /// Recomputes the high watermark from the in-sync followers.
    pub fn advance(&mut self, me: u32, log_end: u64, now: Instant, lag_max: Duration) -> u64 {
        let in_sync = self.in_sync(me, now, lag_max);
        let least = self
            .followers
            .iter()
            .filter(|(r, _)| in_sync.contains(r))
            .map(|(_, f)| f.log_end)
            .min()
            .unwrap_or(log_end)
            .min(log_end);
        self.high_watermark = self.high_watermark.max(least);
        self.high_watermark
    }
}

impl Cluster {
    /// Answers a follower's fetch (see [`super::wire`]).
    pub async fn serve_fetch(&self, req: FetchRequest) -> Result<FetchResponse, ClusterError> {
        let view = self.log.replica(&req.stream, req.partition)?;
        if view.created_ms != req.created_ms {
            return Err(ClusterError::Mismatch {
                stream: req.stream.clone(),
                reason: format!(
                    "created at {} here, at {} on node {}",
                    view.created_ms, req.created_ms, req.replica
                ),
            });
        }
        if !view.replicas.contains(&req.replica) {
            return Err(ClusterError::Invalid(format!(
                "node {} is not a replica of stream `{}` partition {}",
                req.replica, req.stream, req.partition
            )));
        }
        let lead = &view.state.leadership;
        let mut header = header_of(&view);
        // The new leader of a move drains this (old) leader's final log.
        let draining = lead.leader != self.node_id && lead.leader == req.replica && req.leader_epoch < lead.epoch;
        if lead.leader != self.node_id && !draining {
            header.not_leader = true;
            return Ok(FetchResponse {
                header,
                data: Bytes::new(),
            });
        }
        if draining {
            header.draining = true;
            let max_bytes = req.max_bytes.min(self.settings.replication_max_bytes.as_u64()).max(1);
            return self.answer(&req, header, max_bytes).await;
        }
        if req.leader_epoch > lead.epoch {
            self.wake();
            return Err(ClusterError::StaleEpoch {
                stream: req.stream.clone(),
                partition: req.partition,
                node: self.node_id,
                epoch: lead.epoch,
                newer: req.leader_epoch,
            });
        }
        // The follower's records of its last epoch must end where ours do.
        let diverged = match req.last_epoch {
            _ if req.fetch_offset > view.log_end => Some(
                lead.end_of_epoch(req.last_epoch.unwrap_or(0), view.log_end)
                    .unwrap_or(view.log_end),
            ),
            Some(e) => match lead.end_of_epoch(e, view.log_end) {
                Some(end) if end < req.fetch_offset => Some(end),
                Some(_) => None,
                None => Some(view.log_end),
            },
            None => None,
        };
        if let Some(d) = diverged {
            header.diverged = Some(d.min(view.log_end));
            header.in_sync = self.note_fetch(&view, &req, 0).1;
            return Ok(FetchResponse {
                header,
                data: Bytes::new(),
            });
        }
        let (hw, in_sync) = self.note_fetch(&view, &req, req.fetch_offset);
        header.high_watermark = hw;
        header.in_sync = in_sync;
        if req.fetch_offset < view.log_start && req.fragment.is_none() {
            // Below this leader's start (its retention passed the follower
            // while it was away): no records, and the header's `log_start`
            // tells the follower where its log goes on.
            return Ok(FetchResponse {
                header,
                data: Bytes::new(),
            });
        }
        let max_bytes = req.max_bytes.min(self.settings.replication_max_bytes.as_u64()).max(1);
        if let Some(ask) = req.fragment {
            return self.fragment(&req, header, ask.base_offset, ask.index, max_bytes).await;
        }
        if req.fetch_offset == view.log_end && req.wait_ms > 0 {
            let wait = Duration::from_millis(req.wait_ms.min(self.settings.fetch_wait.as_millis() as u64));
            let mut stop = self.stop.subscribe();
            tokio::select! {
                r = self.log.wait_for_log_end(&req.stream, req.partition, req.fetch_offset) => r?,
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            let now = self.log.replica(&req.stream, req.partition)?;
            header.log_end = now.log_end;
            header.log_start = now.log_start;
            header.high_watermark = now.state.high_watermark;
        }
        self.answer(&req, header, max_bytes).await
    }

    /// Data from the fetch offset: whole batches, or the first fragment of
    /// a batch above `max_bytes`.
    async fn answer(
        &self,
        req: &FetchRequest,
        mut header: FetchHeader,
        max_bytes: u64,
    ) -> Result<FetchResponse, ClusterError> {
        if let Some(ask) = req.fragment {
            return self.fragment(req, header, ask.base_offset, ask.index, max_bytes).await;
        }
        if req.fetch_offset >= header.log_end {
            return Ok(FetchResponse {
                header,
                data: Bytes::new(),
            });
        }
        let batches = self
            .log
            .raw_batches(&req.stream, req.partition, req.fetch_offset, max_bytes, MAX_BATCHES)
            .await?;
        match batches.first() {
            Some(b) if b.payload.len() as u64 > max_bytes => {
                self.fragment(req, header, b.base_offset, 0, max_bytes).await
            }
            _ => {
                let mut data = Vec::new();
                for b in batches.iter().filter(|b| b.base_offset >= req.fetch_offset) {
                    if !data.is_empty() && (data.len() + b.payload.len()) as u64 > max_bytes {
                        break;
                    }
                    header.batches.push(BatchHead {
                        base_offset: b.base_offset,
                        count: b.count,
                        len: b.payload.len() as u32,
                        crc: crc32c::crc32c(&b.payload),
                        producer: b.producer,
                    });
                    data.extend_from_slice(&b.payload);
                }
                Ok(FetchResponse {
                    header,
                    data: Bytes::from(data),
                })
            }
        }
    }

    /// Waits until every in-sync follower of a partition this node leads
    /// reports its log starting at `offset` or later (they follow the
    /// leader's start once their log holds it), at most `acks_timeout`.
    /// Kafka's DeleteRecords waits for its low watermark the same way.
    pub async fn wait_followers_start(&self, stream: &str, partition: u32, offset: u64) -> Result<(), ClusterError> {
        let timeout = self.settings.acks_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let v = self.log.replica(stream, partition)?;
            let lead = &v.state.leadership;
            if lead.leader != self.node_id {
                return Err(crate::log::LogError::NotLeader {
                    stream: stream.into(),
                    partition,
                    node: self.node_id,
                    leader: lead.leader,
                    epoch: lead.epoch,
                }
                .into());
            }
            let now = Instant::now();
            let behind =
                self.tracker_of(&v, now)
                    .starting_below(self.node_id, offset, now, self.settings.replica_lag_max);
            if behind.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::StartTimeout {
                    stream: stream.into(),
                    partition,
                    offset,
                    behind,
                    timeout_ms: timeout.as_millis() as u64,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stored batches from `offset` on as this node holds them (any
    /// replica; no tracking): tools and tests compare replicas with it.
    pub async fn serve_read(&self, req: RawReadRequest) -> Result<FetchResponse, ClusterError> {
        let view = self.log.replica(&req.stream, req.partition)?;
        let lead = &view.state.leadership;
        let header = header_of(&view);
        let fetch = FetchRequest {
            stream: req.stream.clone(),
            created_ms: view.created_ms,
            partition: req.partition,
            replica: self.node_id,
            fetch_offset: req.offset,
            leader_epoch: lead.epoch,
            last_epoch: None,
            fragment: None,
            wait_ms: 0,
            max_bytes: req.max_bytes,
            log_start: None,
        };
        self.answer(&fetch, header, req.max_bytes.clamp(1, 64 * 1024 * 1024))
            .await
    }

    /// One fragment of the batch at `base_offset`.
    async fn fragment(
        &self,
        req: &FetchRequest,
        mut header: FetchHeader,
        base_offset: u64,
        index: u32,
        max_bytes: u64,
    ) -> Result<FetchResponse, ClusterError> {
        let batch = self
            .log
            .raw_batches(&req.stream, req.partition, base_offset, 1, 1)
            .await?
            .into_iter()
            .next()
            .filter(|b| b.base_offset == base_offset)
            .ok_or_else(|| ClusterError::Invalid(format!("no batch starts at offset {base_offset}")))?;
        let total = batch.payload.len() as u64;
        let of = total.div_ceil(max_bytes);
        if index as u64 >= of {
            return Err(ClusterError::Invalid(format!(
                "the batch at offset {base_offset} has {of} fragments, not {}",
                index + 1
            )));
        }
        let start = index as u64 * max_bytes;
        let part = batch
            .payload
            .slice(start as usize..(start + max_bytes).min(total) as usize);
        header.fragment = Some(Fragment {
            base_offset,
            count: batch.count,
            total_len: total,
            total_crc: crc32c::crc32c(&batch.payload),
            index,
            of: of as u32,
            len: part.len() as u32,
            crc: crc32c::crc32c(&part),
            producer: batch.producer,
        });
        Ok(FetchResponse { header, data: part })
    }

    /// Notes a follower's fetch offset; returns the high watermark and the
    /// in-sync set.
    fn note_fetch(&self, view: &ReplicaView, req: &FetchRequest, offset: u64) -> (u64, Vec<u32>) {
        let replica = req.replica;
        let now = Instant::now();
        let lag_max = self.settings.replica_lag_max;
        let (hw, in_sync) = {
            let mut trackers = super::lock(&self.trackers);
            let key = (view.stream.clone(), view.partition);
            let t = trackers
                .entry(key)
                .or_insert_with(|| Tracker::new(view, self.node_id, now));
            if t.epoch != view.state.leadership.epoch {
                *t = Tracker::new(view, self.node_id, now);
            }
            t.fetched(replica, offset, view.log_end, now);
            t.started(replica, req.log_start);
            (
                t.advance(self.node_id, view.log_end, now, lag_max),
                t.in_sync(self.node_id, now, lag_max),
            )
        };
        let hw = self
            .log
            .set_high_watermark(&view.stream, view.partition, hw)
            .unwrap_or(hw);
        (hw, in_sync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::meta::Leadership;
    use crate::log::partition::ReplicaState;

    #[test]
    fn the_high_watermark_follows_the_slowest_in_sync_follower() {
        let view = ReplicaView {
            stream: "s".into(),
            stream_id: 1,
            created_ms: 1,
            partition: 0,
            replicas: vec![1, 2, 3],
            min_insync_replicas: None,
            state: ReplicaState {
                leadership: Leadership::initial(1),
                high_watermark: 0,
            },
            log_end: 100,
            log_start: 0,
        };
        let t0 = Instant::now();
        let lag = Duration::from_secs(10);
        let mut t = Tracker::new(&view, 1, t0);
        assert_eq!(t.in_sync(1, t0, lag), vec![1, 2, 3]);
        t.fetched(2, 100, 100, t0);
        t.fetched(3, 40, 100, t0);
        assert_eq!(t.advance(1, 100, t0, lag), 40);
        // Node 3 stops fetching: after the lag bound it leaves the set and
        // the watermark moves to what node 2 holds.
        let later = t0 + Duration::from_secs(11);
        t.fetched(2, 100, 100, later);
        assert_eq!(t.in_sync(1, later, lag), vec![1, 2]);
        assert_eq!(t.advance(1, 120, later, lag), 100);
        // Node 3 catching up rejoins; the watermark never moves back.
        t.fetched(3, 120, 120, later);
        assert_eq!(t.in_sync(1, later, lag), vec![1, 2, 3]);
        assert_eq!(t.advance(1, 120, later, lag), 100);
    }
}
