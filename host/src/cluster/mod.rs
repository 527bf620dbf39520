//! Replication across a static cluster of nodes (see
//! docs/design/0003-replication.md).
//!
//! Owns the cluster's peers, the HTTP client that talks to them, the
//! per-partition trackers of led partitions ([`leader`]) and the fetch tasks
//! of followed partitions ([`follower`]). A reconcile loop keeps the tasks
//! in line with each partition's leadership and moves high watermarks as
//! followers fall out of the in-sync set. Where a stream's partitions go
//! by default: [`placement`].
//!
//! Invariants: every call to a peer has a timeout and a cap on the answer's
//! size; a node follows only the leader its durable leadership names.

pub mod elect;
pub mod error;
pub mod follower;
pub mod leader;
pub mod liveness;
pub mod moves;
pub mod peer_auth;
pub mod placement;
pub mod upkeep;
pub mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_changes;
#[cfg(test)]
mod tests_cold;
#[cfg(test)]
mod tests_compacted;
#[cfg(test)]
mod tests_elect;
#[cfg(test)]
mod tests_faults;
#[cfg(test)]
mod tests_retention_gap;
#[cfg(test)]
mod tests_safety;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{Notify, watch};

pub use elect::ElectionKind;
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
    /// For calls to peers; rebuilt when `[tls]` files are reloaded.
    client: std::sync::RwLock<reqwest::Client>,
    /// The cluster's secret: peer calls carry a proof of this node's id
    /// made with it ([`peer_auth`]).
    secret: String,
    trackers: Mutex<HashMap<(String, u32), Tracker>>,
    followers: Mutex<HashMap<(String, u32), FollowerTask>>,
    stop: watch::Sender<bool>,
    wake: Notify,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    data_dir: std::path::PathBuf,
    /// When each led partition's silent followers were last asked.
    checks: Mutex<HashMap<(String, u32), Instant>>,
    /// The high watermarks last written to the checkpoint.
    checkpointed: Mutex<Vec<upkeep::Checkpointed>>,
    /// Which peers this node's calls found down.
    liveness: liveness::Liveness,
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

/// The HTTP client for calls to peers: over HTTPS with `tls`, trusting
/// exactly `[tls] ca` (or the node's own certificates).
fn peer_client(
    settings: &ClusterSettings,
    tls: Option<&rustls::ClientConfig>,
) -> Result<reqwest::Client, ClusterError> {
    let mut client = reqwest::Client::builder().connect_timeout(settings.peer_timeout);
    if let Some(tls) = tls {
        client = client.use_preconfigured_tls(tls.clone());
    }
    client
        .build()
        .map_err(|e| ClusterError::NotConfigured(format!("HTTP client: {e}")))
}

impl Cluster {
    pub fn new(
        settings: ClusterSettings,
        log: Arc<Log>,
        max_batch_bytes: u64,
        data_dir: &std::path::Path,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let peers = settings
            .peers(scheme)
            .map_err(|e| ClusterError::NotConfigured(e.message().to_string()))?;
        let client = peer_client(&settings, tls.as_deref())?;
        let secret = settings.secret.clone().unwrap_or_default();
        Ok(Arc::new(Cluster {
            node_id: settings.node_id,
            peers,
            settings,
            max_batch_bytes,
            log,
            client: std::sync::RwLock::new(client),
            secret,
            trackers: Mutex::new(HashMap::new()),
            followers: Mutex::new(HashMap::new()),
            stop: watch::Sender::new(false),
            wake: Notify::new(),
            task: Mutex::new(None),
            data_dir: data_dir.to_path_buf(),
            checks: Mutex::new(HashMap::new()),
            checkpointed: Mutex::new(Vec::new()),
            liveness: liveness::Liveness::default(),
        }))
    }

    /// Whether this node's calls found `node` down (see [`liveness`]).
    pub fn peer_down(&self, node: u32) -> bool {
        node != self.node_id && self.liveness.down(node)
    }

    /// The other nodes of the cluster, by id.
    pub fn peer_ids(&self) -> Vec<u32> {
        self.peers.keys().copied().filter(|n| *n != self.node_id).collect()
    }

    pub fn node_id(&self) -> u32 {
        self.node_id
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// Calls to peers from now on use `tls` (reloaded `[tls]` files);
    /// calls in flight finish on the client they started with.
    pub fn use_tls(&self, tls: &rustls::ClientConfig) -> Result<(), ClusterError> {
        let client = peer_client(&self.settings, Some(tls))?;
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = client;
        Ok(())
    }

    /// Node ids and base URLs, this node included.
    pub fn peers(&self) -> &BTreeMap<u32, String> {
        &self.peers
    }

    /// Restores the checkpointed high watermarks and starts the reconcile
    /// loop.
    pub fn start(self: &Arc<Self>) {
        self.restore_high_watermarks();
        let this = self.clone();
        let handle = tokio::spawn(async move {
            let mut stop = this.stop.subscribe();
            let mut checkpointed = Instant::now();
            loop {
                this.reconcile();
                if checkpointed.elapsed() >= upkeep::CHECKPOINT_EVERY {
                    checkpointed = Instant::now();
                    this.checkpoint_high_watermarks();
                }
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
        self.checkpoint_high_watermarks();
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
                let (hw, silent) = {
                    let mut trackers = lock(&self.trackers);
                    let t = trackers
                        .entry(key)
                        .or_insert_with(|| Tracker::new(v, self.node_id, now));
                    if t.epoch != lead.epoch {
                        *t = Tracker::new(v, self.node_id, now);
                    }
                    let silent: Vec<u32> = t
                        .followers
                        .iter()
                        .filter(|(_, f)| {
                            f.last_fetch
                                .is_none_or(|at| now.saturating_duration_since(at) > upkeep::SILENT_AFTER)
                        })
                        .map(|(r, _)| *r)
                        .collect();
                    (
                        t.advance(self.node_id, v.log_end, now, self.settings.replica_lag_max),
                        silent,
                    )
                };
                if hw != v.state.high_watermark {
                    let _ = self.log.set_high_watermark(&v.stream, v.partition, hw);
                }
                self.check_silent(v, silent, now);
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
            let t = self.tracker_of(&v, now);
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

    /// Stream, partition and status of every replicated partition this node
    /// leads (`leading`) or follows, in stream and partition order.
    pub fn statuses(&self, leading: bool) -> Vec<(String, u32, ReplicationStatus)> {
        let mut out: Vec<_> = self
            .log
            .replicas()
            .into_iter()
            .filter(|v| (v.state.leadership.leader == self.node_id) == leading)
            .filter_map(|v| {
                let st = self.status(&v.stream, v.partition).ok()?;
                Some((v.stream, v.partition, st))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }

    /// A copy of a led partition's tracker (a fresh one before any fetch).
    fn tracker_of(&self, v: &crate::log::replica::ReplicaView, now: Instant) -> Tracker {
        lock(&self.trackers)
            .get(&(v.stream.clone(), v.partition))
            .cloned()
            .unwrap_or_else(|| Tracker::new(v, self.node_id, now))
    }

    /// The in-sync set of a partition this node leads (`None` otherwise).
    pub fn in_sync(&self, stream: &str, partition: u32) -> Option<Vec<u32>> {
        let v = self.log.replica(stream, partition).ok()?;
        if v.state.leadership.leader != self.node_id {
            return None;
        }
        let now = Instant::now();
        let t = self.tracker_of(&v, now);
        Some(t.in_sync(self.node_id, now, self.settings.replica_lag_max))
    }

    /// Refuses when this node leads the partition with fewer in-sync
    /// replicas than the stream's `min_insync_replicas`, or else the
    /// node's (capped at the replica count).
    pub fn check_min_in_sync(&self, stream: &str, partition: u32) -> Result<(), ClusterError> {
        let v = self.log.replica(stream, partition)?;
        let required = v.required_in_sync(self.settings.min_insync_replicas);
        match self.in_sync(stream, partition) {
            Some(isr) if isr.len() < required => Err(ClusterError::NotEnoughReplicas {
                stream: stream.into(),
                partition,
                in_sync: isr,
                required,
            }),
            _ => Ok(()),
        }
    }

    /// Waits until the high watermark reaches `end` (every in-sync replica
    /// holds the records below it) with at least `min_insync_replicas` in
    /// sync, at most `acks_timeout`.
    pub async fn wait_acks(&self, stream: &str, partition: u32, end: u64) -> Result<(), ClusterError> {
        let mut rx = self.log.watch_visible_end(stream, partition)?;
        let timeout = self.settings.acks_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let v = self.log.replica(stream, partition)?;
            if v.state.leadership.leader != self.node_id {
                // Moved away while waiting: the new leader decides.
                return Err(crate::log::LogError::NotLeader {
                    stream: stream.into(),
                    partition,
                    node: self.node_id,
                    leader: v.state.leadership.leader,
                    epoch: v.state.leadership.epoch,
                }
                .into());
            }
            if v.state.high_watermark >= end {
                // In the set as it is now: fewer than required fails at once.
                return self.check_min_in_sync(stream, partition);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::AcksTimeout {
                    stream: stream.into(),
                    partition,
                    offset: end,
                    timeout_ms: timeout.as_millis() as u64,
                });
            }
            let step = deadline.min(tokio::time::Instant::now() + Duration::from_millis(100));
            let _ = tokio::time::timeout_at(step, rx.wait_for(|hw| *hw >= end)).await;
        }
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
            refused: true,
        })?;
        let url = format!("{base}{path}");
        let client = self.client.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut req = client.post(&url).json(body).timeout(timeout);
        req = req.header(
            reqwest::header::AUTHORIZATION,
            peer_auth::header(&self.secret, self.node_id),
        );
        let unreachable = |e: reqwest::Error| ClusterError::Unreachable {
            node,
            url: url.clone(),
            reason: e.to_string(),
            refused: liveness::is_refused(&e),
        };
        // Refused, or silent until the timeout (a partitioned link, or a
        // peer too busy to answer): the peer is unreachable, not wrong.
        let mut resp = match req.send().await {
            Ok(r) => {
                self.liveness.reached(node);
                r
            }
            Err(e) if e.is_connect() || e.is_timeout() => {
                if liveness::is_refused(&e) {
                    self.liveness.refused(node);
                }
                return Err(unreachable(e));
            }
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
                Err(e) if e.is_timeout() => return Err(unreachable(e)),
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
