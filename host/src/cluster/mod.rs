//! Replication across a static cluster of nodes (see
//! docs/design/0003-replication.md).
//!
//! Owns the cluster's peers, the HTTP client that talks to them, the
//! per-partition trackers of led partitions ([`leader`]) and the fetch tasks
//! of followed partitions ([`follower`]). A reconcile loop keeps the tasks
//! in line with each partition's leadership and moves high watermarks as
//! followers fall out of the in-sync set.
//!
//! Invariants: every call to a peer has a timeout and a cap on the answer's
//! size; a node follows only the leader its durable leadership names.

pub mod error;
pub mod follower;
pub mod leader;
pub mod moves;
pub mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faults;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{Notify, watch};

pub use error::ClusterError;
use follower::{FollowerStatus, SharedStatus};
use leader::Tracker;

use crate::config::ClusterSettings;
use crate::log::Log;

/// How often the reconcile loop runs without being woken.
const RECONCILE_EVERY: Duration = Duration::from_millis(200);

/// A follower task and the leadership it follows.
struct FollowerTask {
    leader: u32,
    epoch: u32,
    status: SharedStatus,
    handle: tokio::task::JoinHandle<()>,
}

pub struct Cluster {
    node_id: u32,
    peers: BTreeMap<u32, String>,
    settings: ClusterSettings,
    max_batch_bytes: u64,
    log: Arc<Log>,
    client: reqwest::Client,
    token: Option<String>,
    trackers: Mutex<HashMap<(String, u32), Tracker>>,
    followers: Mutex<HashMap<(String, u32), FollowerTask>>,
    stop: watch::Sender<bool>,
    wake: Notify,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// One replica of a partition, as its leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReplicaStatus {
    pub node: u32,
    /// Its log end (from its last fetch; the leader's own for the leader).
    pub log_end_offset: u64,
    /// Records it misses up to the leader's end.
    pub lag: u64,
    pub in_sync: bool,
}

/// A replicated partition on this node, as status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReplicationStatus {
    pub leader: u32,
    pub epoch: u32,
    /// Whether this node leads the partition.
    pub is_leader: bool,
    pub high_watermark: u64,
    /// This node's log end (above the high watermark too).
    pub log_end_offset: u64,
    /// On the leader: the in-sync set and every replica's log end and lag.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub in_sync: Vec<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaStatus>,
    /// On a follower: its fetch task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follower: Option<FollowerStatus>,
}

impl Cluster {
    pub fn new(
        settings: ClusterSettings,
        log: Arc<Log>,
        token: Option<String>,
        max_batch_bytes: u64,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let peers = settings
            .peers()
            .map_err(|e| ClusterError::NotConfigured(e.message().to_string()))?;
        let client = reqwest::Client::builder()
            .connect_timeout(settings.peer_timeout)
            .build()
            .map_err(|e| ClusterError::NotConfigured(format!("HTTP client: {e}")))?;
        Ok(Arc::new(Cluster {
            node_id: settings.node_id,
            peers,
            settings,
            max_batch_bytes,
            log,
            client,
            token,
            trackers: Mutex::new(HashMap::new()),
            followers: Mutex::new(HashMap::new()),
            stop: watch::Sender::new(false),
            wake: Notify::new(),
            task: Mutex::new(None),
        }))
    }

    pub fn node_id(&self) -> u32 {
        self.node_id
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// Node ids and base URLs, this node included.
    pub fn peers(&self) -> &BTreeMap<u32, String> {
        &self.peers
    }

    /// Starts the reconcile loop.
    pub fn start(self: &Arc<Self>) {
        let this = self.clone();
        let handle = tokio::spawn(async move {
            let mut stop = this.stop.subscribe();
            loop {
                this.reconcile();
                tokio::select! {
                    _ = tokio::time::sleep(RECONCILE_EVERY) => {}
                    _ = this.wake.notified() => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        });
        *lock(&self.task) = Some(handle);
    }

    /// Asks the reconcile loop to run now (a leadership changed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops every follower task and the reconcile loop.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let handle = lock(&self.task).take();
        if let Some(h) = handle {
            let _ = h.await;
        }
        let tasks: Vec<FollowerTask> = lock(&self.followers).drain().map(|(_, t)| t).collect();
        for t in tasks {
            let _ = t.handle.await;
        }
    }

    /// Starts and stops follower tasks to match each partition's leadership,
    /// and moves led partitions' high watermarks as the in-sync set shrinks.
    fn reconcile(self: &Arc<Self>) {
        let views = self.log.replicas();
        let now = Instant::now();
        let mut followers = lock(&self.followers);
        followers.retain(|key, t| {
            let keep = views.iter().any(|v| {
                (&v.stream, v.partition) == (&key.0, key.1)
                    && v.state.leadership.leader == t.leader
                    && v.state.leadership.epoch == t.epoch
                    && v.state.leadership.leader != self.node_id
            });
            if !keep {
                t.handle.abort();
            }
            keep
        });
        for v in &views {
            if !v.replicas.contains(&self.node_id) {
                continue;
            }
            let key = (v.stream.clone(), v.partition);
            let lead = &v.state.leadership;
            if lead.leader == self.node_id {
                let hw = {
                    let mut trackers = lock(&self.trackers);
                    let t = trackers
                        .entry(key)
                        .or_insert_with(|| Tracker::new(v, self.node_id, now));
                    if t.epoch != lead.epoch {
                        *t = Tracker::new(v, self.node_id, now);
                    }
                    t.advance(self.node_id, v.log_end, now, self.settings.replica_lag_max)
                };
                if hw != v.state.high_watermark {
                    let _ = self.log.set_high_watermark(&v.stream, v.partition, hw);
                }
                continue;
            }
            if followers.contains_key(&key) {
                continue;
            }
            let status: SharedStatus = Arc::default();
            let handle = tokio::spawn(self.clone().follow(v.clone(), status.clone()));
            followers.insert(
                key,
                FollowerTask {
                    leader: lead.leader,
                    epoch: lead.epoch,
                    status,
                    handle,
                },
            );
        }
        drop(followers);
        lock(&self.trackers).retain(|k, _| {
            views
                .iter()
                .any(|v| (&v.stream, v.partition) == (&k.0, k.1) && v.state.leadership.leader == self.node_id)
        });
    }

    /// A replicated partition's state on this node.
    pub fn status(&self, stream: &str, partition: u32) -> Result<ReplicationStatus, ClusterError> {
        let v = self.log.replica(stream, partition)?;
        let lead = &v.state.leadership;
        let mut out = ReplicationStatus {
            leader: lead.leader,
            epoch: lead.epoch,
            is_leader: lead.leader == self.node_id,
            high_watermark: v.state.high_watermark,
            log_end_offset: v.log_end,
            in_sync: Vec::new(),
            replicas: Vec::new(),
            follower: None,
        };
        if out.is_leader {
            let now = Instant::now();
            let trackers = lock(&self.trackers);
            let t = trackers
                .get(&(stream.to_string(), partition))
                .cloned()
                .unwrap_or_else(|| Tracker::new(&v, self.node_id, now));
            out.in_sync = t.in_sync(self.node_id, now, self.settings.replica_lag_max);
            for r in &v.replicas {
                let end = if *r == self.node_id {
                    v.log_end
                } else {
                    t.followers.get(r).map_or(0, |f| f.log_end)
                };
                out.replicas.push(ReplicaStatus {
                    node: *r,
                    log_end_offset: end,
                    lag: v.log_end.saturating_sub(end),
                    in_sync: out.in_sync.contains(r),
                });
            }
        } else if let Some(t) = lock(&self.followers).get(&(stream.to_string(), partition)) {
            out.follower = Some(lock(&t.status).clone());
        }
        Ok(out)
    }

    /// Waits until the high watermark reaches `end` (every in-sync replica
    /// holds the records below it), at most `acks_timeout`.
    pub async fn wait_acks(&self, stream: &str, partition: u32, end: u64) -> Result<(), ClusterError> {
        let mut rx = self.log.watch_visible_end(stream, partition)?;
        let timeout = self.settings.acks_timeout;
        match tokio::time::timeout(timeout, rx.wait_for(|hw| *hw >= end)).await {
            Ok(Ok(_)) => Ok(()),
            _ if self.log.replica(stream, partition)?.state.high_watermark >= end => Ok(()),
            _ => Err(ClusterError::AcksTimeout {
                stream: stream.into(),
                partition,
                offset: end,
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    /// The default assignment: partition `p` on `factor` consecutive nodes
    /// starting at the `p`-th (round-robin), its first replica leading.
    pub fn assign(&self, partitions: u32, factor: u32) -> Result<Vec<Vec<u32>>, ClusterError> {
        let ids: Vec<u32> = self.peers.keys().copied().collect();
        if factor as usize > ids.len() {
            return Err(ClusterError::Invalid(format!(
                "replication_factor {factor} exceeds the cluster's {} nodes",
                ids.len()
            )));
        }
        Ok((0..partitions as usize)
            .map(|p| (0..factor as usize).map(|i| ids[(p + i) % ids.len()]).collect())
            .collect())
    }

    /// Checks an explicit assignment against the cluster.
    pub fn check_assignment(&self, assignment: &[Vec<u32>], factor: u32) -> Result<(), ClusterError> {
        for (p, replicas) in assignment.iter().enumerate() {
            let mut seen = replicas.clone();
            seen.sort_unstable();
            seen.dedup();
            if replicas.len() != factor as usize || seen.len() != replicas.len() {
                return Err(ClusterError::Invalid(format!(
                    "partition {p} needs {factor} distinct replicas, got {replicas:?}"
                )));
            }
            if let Some(n) = replicas.iter().find(|n| !self.peers.contains_key(n)) {
                return Err(ClusterError::Invalid(format!(
                    "partition {p}: node {n} is not in the cluster"
                )));
            }
        }
        Ok(())
    }

    /// POSTs JSON to a peer and reads the answer, at most `cap` bytes,
    /// within `timeout`. Error statuses become [`ClusterError::Peer`].
    pub async fn post_capped<T: Serialize + ?Sized>(
        &self,
        node: u32,
        path: &str,
        body: &T,
        cap: usize,
        timeout: Duration,
    ) -> Result<Bytes, ClusterError> {
        let base = self.peers.get(&node).ok_or_else(|| ClusterError::Unreachable {
            node,
            url: String::new(),
            reason: "not in the cluster's nodes".into(),
        })?;
        let url = format!("{base}{path}");
        let mut req = self.client.post(&url).json(body).timeout(timeout);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let unreachable = |e: reqwest::Error| ClusterError::Unreachable {
            node,
            url: url.clone(),
            reason: e.to_string(),
        };
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Err(unreachable(e)),
            Err(e) => return Err(ClusterError::bad(format!("node {node}: {e}"))),
        };
        let status = resp.status();
        let mut buf = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if buf.len() + chunk.len() > cap {
                        return Err(ClusterError::bad(format!("node {node} answered more than {cap} bytes")));
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(ClusterError::bad(format!("node {node} answer broke off: {e}"))),
            }
        }
        if !status.is_success() {
            let (code, message) = match serde_json::from_slice::<serde_json::Value>(&buf) {
                Ok(v) => (
                    v["error"]["code"].as_str().unwrap_or("unknown").to_string(),
                    v["error"]["message"].as_str().unwrap_or("").to_string(),
                ),
                Err(_) => (
                    "unknown".into(),
                    String::from_utf8_lossy(&buf).chars().take(200).collect(),
                ),
            };
            return Err(ClusterError::Peer {
                node,
                status: status.as_u16(),
                code,
                message,
            });
        }
        Ok(Bytes::from(buf))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
