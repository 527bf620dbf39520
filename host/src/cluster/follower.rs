//! The follower's side: one task per followed partition pulls from the
//! leader, reassembles fragments, truncates a diverged tail and appends the
//! leader's batches at the leader's offsets.
//!
//! Invariants (the lesson of a leader and follower looping forever on a
//! message larger than the peer limit):
//! * every answer is read with a size cap, and a batch above the limit
//!   arrives in fragments reassembled in a buffer of at most
//!   `max_batch_bytes`;
//! * an unreachable leader (the connection refused, or no whole answer
//!   within the call's timeout, as across a network partition, however
//!   long) is retried with capped exponential backoff and no bound;
//!   any other failure (garbage, a truncated or oversized answer, a closed
//!   connection mid-answer, an error status, an answer that moves nothing)
//!   counts, and after `fetch_failures_max` of them in a row without
//!   progress the task stops and shows the error in status.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::Cluster;
use super::error::ClusterError;
use super::wire::{FetchHeader, FetchRequest, FetchResponse, FragmentAsk, HEADER_ROOM, Reassembly};
use crate::log::meta::Leadership;
use crate::log::replica::{RawBatch, ReplicaView};

/// What a follower task is doing, for status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FollowerStatus {
    /// `fetching`, `backoff`, `stalled` (stopped after repeated failures)
    /// or `stopped`.
    pub state: String,
    /// The leader it fetches from.
    pub leader: u32,
    /// The leader says this node is in the in-sync set (as of the last fetch).
    pub in_sync: bool,
    /// Failures in a row without progress.
    pub failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

pub type SharedStatus = Arc<Mutex<FollowerStatus>>;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What one answer did.
enum Step {
    Progress,
    Idle,
    /// Nothing to do until something else happens (a move in progress).
    Wait,
}

impl Cluster {
    /// Follows `stream`/`partition` until the leadership changes, the node
    /// stops, or fetching fails `fetch_failures_max` times in a row.
    pub(super) async fn follow(self: Arc<Self>, view: ReplicaView, status: SharedStatus) {
        let (stream, partition) = (view.stream.clone(), view.partition);
        let leader = view.state.leadership.leader;
        let mut stop = self.stop.subscribe();
        let mut failures = 0u32;
        let mut backoff = BACKOFF_MIN;
        let mut frag: Option<Reassembly> = None;
        set(&status, |s| {
            s.state = "fetching".into();
            s.leader = leader;
        });
        loop {
            if *stop.borrow() {
                break;
            }
            let view = match self.log.replica(&stream, partition) {
                Ok(v) if v.state.leadership.leader == leader => v,
                _ => break,
            };
            let res = self.fetch_step(&view, &mut frag, &status).await;
            let pause = match res {
                Ok(Step::Progress | Step::Idle) => {
                    failures = 0;
                    backoff = BACKOFF_MIN;
                    set(&status, |s| {
                        s.state = "fetching".into();
                        s.failures = 0;
                        s.last_error = None;
                    });
                    continue;
                }
                Ok(Step::Wait) => self.settings.fetch_wait,
                Err(ClusterError::Unreachable { reason, .. }) => {
                    // The leader is down, restarting or cut off: not this
                    // request's fault; retried with backoff and no bound.
                    set(&status, |s| {
                        s.state = "backoff".into();
                        s.last_error = Some(format!("leader {leader} unreachable: {reason}"));
                    });
                    backoff
                }
                Err(e) => {
                    crate::metrics::add(&stream, crate::metrics::StreamCounter::ReplicationFetchErrors, 1);
                    failures += 1;
                    frag = None;
                    let msg = e.to_string();
                    tracing::warn!(stream, partition, leader, failures, error = %msg, "replication fetch failed");
                    if failures >= self.settings.fetch_failures_max {
                        tracing::error!(stream, partition, leader, error = %msg,
                            "replication stopped after repeated failures; it restarts when the leadership changes or the node restarts");
                        set(&status, |s| {
                            s.state = "stalled".into();
                            s.failures = failures;
                            s.last_error = Some(msg);
                        });
                        return;
                    }
                    set(&status, |s| {
                        s.state = "backoff".into();
                        s.failures = failures;
                        s.last_error = Some(msg);
                    });
                    backoff
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        set(&status, |s| s.state = "stopped".into());
    }

    /// One fetch and what follows from its answer.
    async fn fetch_step(
        &self,
        view: &ReplicaView,
        frag: &mut Option<Reassembly>,
        status: &SharedStatus,
    ) -> Result<Step, ClusterError> {
        let lead = &view.state.leadership;
        let max_bytes = self.settings.replication_max_bytes.as_u64();
        let req = self.fetch_request(view, frag, max_bytes);
        if req.fragment.is_none() {
            *frag = None;
        }
        let timeout = self.settings.peer_timeout + self.settings.fetch_wait;
        let body = self
            .post_capped(
                lead.leader,
                "/internal/replication/fetch",
                &req,
                max_bytes as usize + HEADER_ROOM,
                timeout,
            )
            .await?;
        let resp = FetchResponse::decode(body, max_bytes)?;
        if let Some(step) = self.follow_leadership(view, &resp.header).await? {
            return Ok(step);
        }
        let h = &resp.header;
        let in_sync = h.in_sync.contains(&self.node_id);
        set(status, |s| s.in_sync = in_sync);
        if let Some(offset) = h.diverged {
            if offset >= view.log_end {
                return Err(ClusterError::bad(format!(
                    "leader says the log diverged at {offset}, at or past its end {}",
                    view.log_end
                )));
            }
            tracing::warn!(
                stream = view.stream,
                partition = view.partition,
                offset,
                "log diverged from the leader's; truncating"
            );
            self.log.truncate(&view.stream, view.partition, offset).await?;
            return Ok(Step::Progress);
        }
        if h.log_start > view.log_end && h.batches.is_empty() && h.fragment.is_none() && !h.draining {
            // The leader's retention passed this replica's end while it was
            // away: what it holds is gone there too, so its log goes on at
            // the leader's start.
            tracing::warn!(
                stream = view.stream,
                partition = view.partition,
                end = view.log_end,
                leader_start = h.log_start,
                "this replica ends below its leader's start; its log restarts there"
            );
            *frag = None;
            self.log
                .reset_replica(&view.stream, view.partition, h.log_start)
                .await?;
            return Ok(Step::Progress);
        }
        let appended = self.append_answer(view, frag, &resp).await?;
        // Records the leader deleted go here too once this log holds its
        // start (the next fetch tells the leader).
        self.log.follow_start(&view.stream, view.partition, h.log_start).await?;
        if !h.draining {
            let end = self.log.replica(&view.stream, view.partition)?.log_end;
            self.log
                .set_high_watermark(&view.stream, view.partition, h.high_watermark.min(end))?;
        }
        if appended {
            return Ok(Step::Progress);
        }
        if h.draining {
            return Ok(Step::Wait);
        }
        if h.log_end > view.log_end {
            return Err(ClusterError::bad(format!(
                "leader's log ends at {} but it sent nothing from {}",
                h.log_end, view.log_end
            )));
        }
        Ok(Step::Idle)
    }

    /// The next fetch from this replica's log end (continuing a fragmented
    /// batch if one is being reassembled).
    fn fetch_request(&self, view: &ReplicaView, frag: &Option<Reassembly>, max_bytes: u64) -> FetchRequest {
        let lead = &view.state.leadership;
        FetchRequest {
            stream: view.stream.clone(),
            created_ms: view.created_ms,
            partition: view.partition,
            replica: self.node_id,
            fetch_offset: view.log_end,
            leader_epoch: lead.epoch,
            last_epoch: lead.last_epoch(view.log_end),
            fragment: frag
                .as_ref()
                .filter(|f| f.base_offset >= view.log_end)
                .map(|f| FragmentAsk {
                    base_offset: f.base_offset,
                    index: f.next,
                }),
            wait_ms: if frag.is_some() {
                0
            } else {
                self.settings.fetch_wait.as_millis() as u64
            },
            max_bytes,
            log_start: Some(view.log_start),
        }
    }

    /// Checks the answer's leadership against ours and adopts a newer one.
    /// `Some(step)` ends this step (not the leader any more, or a move to
    /// this node under way).
    async fn follow_leadership(&self, view: &ReplicaView, h: &FetchHeader) -> Result<Option<Step>, ClusterError> {
        let lead = &view.state.leadership;
        if h.not_leader {
            if h.leader_epoch > lead.epoch && h.leader == self.node_id {
                // A move to this node is under way; it says when to lead.
                return Ok(Some(Step::Wait));
            }
            if h.leader_epoch > lead.epoch {
                // The node we followed knows a newer leader: adopt it.
                let mut l = lead.clone();
                l.leader = h.leader;
                l.epoch = h.leader_epoch;
                self.log.set_leadership(&view.stream, view.partition, l).await?;
                self.wake();
                return Ok(Some(Step::Progress));
            }
            return Err(ClusterError::bad(format!(
                "node {} does not lead the partition at epoch {} either",
                lead.leader, lead.epoch
            )));
        }
        if h.draining {
            if h.leader != self.node_id {
                return Err(ClusterError::bad(
                    "a drain answer to a node that is not the new leader".into(),
                ));
            }
        } else if h.leader_epoch < lead.epoch {
            return Err(ClusterError::bad(format!(
                "leader answered with epoch {}, older than {}",
                h.leader_epoch, lead.epoch
            )));
        }
        if !h.draining && (h.leader_epoch > lead.epoch || h.history != lead.history) {
            self.log
                .set_leadership(
                    &view.stream,
                    view.partition,
                    Leadership {
                        leader: h.leader,
                        epoch: h.leader_epoch,
                        history: h.history.clone(),
                    },
                )
                .await?;
        }
        Ok(None)
    }

    /// Appends what the answer carries: a fragment (the whole batch once
    /// its last fragment arrived) and whole batches. Whether it had any.
    async fn append_answer(
        &self,
        view: &ReplicaView,
        frag: &mut Option<Reassembly>,
        resp: &FetchResponse,
    ) -> Result<bool, ClusterError> {
        let mut appended = false;
        if let Some(f) = resp.header.fragment {
            let asm = match frag {
                Some(a) => a,
                None => frag.insert(Reassembly::start(&f, self.max_batch_bytes)?),
            };
            if let Some(whole) = asm.push(&f, &resp.data)? {
                let (base_offset, count, producer) = (asm.base_offset, asm.count, asm.producer);
                *frag = None;
                let batch = RawBatch {
                    base_offset,
                    count,
                    payload: whole,
                    producer,
                };
                self.append(view, vec![batch]).await?;
            }
            appended = true;
        }
        let batches: Vec<RawBatch> = resp
            .batches()
            .map(|(b, payload)| RawBatch {
                base_offset: b.base_offset,
                count: b.count,
                payload,
                producer: b.producer,
            })
            .collect();
        if !batches.is_empty() {
            self.append(view, batches).await?;
            appended = true;
        }
        Ok(appended)
    }

    async fn append(&self, view: &ReplicaView, batches: Vec<RawBatch>) -> Result<(), ClusterError> {
        let len: usize = batches.iter().map(|b| b.payload.len()).sum();
        self.log.append_replica(&view.stream, view.partition, batches).await?;
        crate::metrics::add(
            &view.stream,
            crate::metrics::StreamCounter::ReplicationBytes,
            len as u64,
        );
        Ok(())
    }
}

fn set(status: &SharedStatus, f: impl FnOnce(&mut FollowerStatus)) {
    f(&mut status.lock().unwrap_or_else(|p| p.into_inner()));
}
