//! The [`Host`]'s cluster operations: creating and deleting replicated
//! streams on every node, `acks=all` appends, and replication status.
//! Invariant: a replicated stream has the same name, partitions, creation
//! time and assignment on every node; it is created on the peers first, and
//! a create that some peer did not take is taken back from the others, so a
//! failure leaves no node with it (unless a node could not be asked; the
//! error names it).

use serde::{Deserialize, Serialize};

use super::Host;
use crate::cluster::moves::{LeaderChange, PartitionState};
use crate::cluster::{ClusterError, ElectionKind, ReplicationStatus};
use crate::error::{Error, ErrorKind};
use crate::log::meta::{Compaction, Replication, Retention, StreamConfig};
use crate::log::producers::{ActiveProducer, ProducerBatch};
use crate::log::{Appended, Record, StreamInfo};

/// An append with its offsets and WAL place; resolves once acknowledged.
pub type PendingAppend = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Appended, Error>> + Send>>;

/// How many replicas must hold an append before it is acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Acks {
    /// Durable on the leader's disk.
    #[default]
    Leader,
    /// Durable on every in-sync replica (below the high watermark).
    All,
}

/// A replicated stream as one node tells another to create it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    pub name: String,
    pub partitions: u32,
    pub created_ms: u64,
    pub retention: Retention,
    pub replication: Replication,
    /// Compaction settings; every node compacts its own copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compaction: Option<Compaction>,
    /// The stream's own largest Kafka record batch, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u64>,
}

impl Host {
    pub(super) fn cluster(&self) -> Result<&std::sync::Arc<crate::cluster::Cluster>, Error> {
        self.inner.cluster.as_ref().ok_or_else(|| {
            ClusterError::NotConfigured("replication needs a [cluster] section in the node's config".into()).into()
        })
    }

    /// Creates a replicated stream: fills in the assignment, creates it on
    /// every other node, then here.
    pub(super) async fn create_replicated(
        &self,
        name: &str,
        partitions: u32,
        mut config: StreamConfig,
    ) -> Result<StreamInfo, Error> {
        let cluster = self.cluster()?;
        self.check_partition_count(partitions)?;
        let Some(r) = config.replication.as_mut() else {
            return Err(Error::invalid("no replication asked for"));
        };
        if r.assignment.is_empty() {
            r.assignment = cluster.assign(name, partitions, r.factor)?;
        }
        if r.assignment.len() != partitions as usize {
            return Err(Error::invalid(format!(
                "assignment lists {} partitions, the stream has {partitions}",
                r.assignment.len()
            )));
        }
        cluster.check_assignment(&r.assignment, r.factor)?;
        crate::log::meta::validate_name(name)?;
        if self.inner.log.describe_stream(name).is_ok() {
            return Err(crate::log::LogError::StreamExists { name: name.into() }.into());
        }
        let spec = StreamSpec {
            name: name.into(),
            partitions,
            created_ms: crate::fsutil::now_ms(),
            retention: config.retention,
            replication: r.clone(),
            compaction: config.compaction.clone(),
            max_message_bytes: config.max_message_bytes,
        };
        let failed = self.on_peers("/internal/streams", &spec).await;
        if !failed.is_empty() {
            return Err(self.take_back(&spec, &failed).await);
        }
        self.create_from_spec(&spec).await
    }

    /// Takes back a create that did not reach every node (`failed`): asks
    /// every other node to delete that incarnation (a node that timed out
    /// may have made it), so that creating again once the nodes are up
    /// starts clean, as a Kafka CreateTopics that failed leaves no topic.
    /// Returns the error to answer: `replica_unavailable`, naming the
    /// nodes that may keep a copy if some could not be asked.
    async fn take_back(&self, spec: &StreamSpec, failed: &[(u32, ClusterError)]) -> Error {
        let name = &spec.name;
        let why = failures(failed);
        let body = serde_json::json!({ "name": name, "replicated_only": true, "created_ms": spec.created_ms });
        // A node whose create was refused at connect, or answered with an
        // error, made no copy; one that timed out may have.
        let no_copy = |node: u32| {
            failed.iter().any(|(n, e)| {
                *n == node
                    && matches!(
                        e,
                        ClusterError::Unreachable { refused: true, .. } | ClusterError::Peer { .. }
                    )
            })
        };
        let kept: Vec<String> = self
            .on_peers("/internal/streams/delete", &body)
            .await
            .into_iter()
            .filter(|(n, e)| {
                !no_copy(*n) && !matches!(e, ClusterError::Peer { code, .. } if code == "stream_not_found")
            })
            .map(|(n, _)| n.to_string())
            .collect();
        if kept.is_empty() {
            return replica_unavailable(format!(
                "stream `{name}` was not created: not every node took it ({}); the others deleted it again, \
                 create it again once all nodes are up",
                why.join("; ")
            ));
        }
        tracing::warn!(stream = %name, nodes = %kept.join(", "), "a failed create could not be taken back everywhere");
        replica_unavailable(format!(
            "stream `{name}` was not created: not every node took it ({}), and node(s) {} could not be asked to \
             delete it again and may keep a copy: delete the stream once they are up, then create it again",
            why.join("; "),
            kept.join(", ")
        ))
    }

    /// Creates a stream another node asked for; the same spec again is a
    /// success (so a create can be retried).
    pub async fn create_from_spec(&self, spec: &StreamSpec) -> Result<StreamInfo, Error> {
        if let Ok(meta) = self.inner.log.stream_meta(&spec.name) {
            if meta.created_ms == spec.created_ms
                && meta.replication.as_ref() == Some(&spec.replication)
                && meta.partitions == spec.partitions
            {
                return Ok(self.inner.log.describe_stream(&spec.name)?);
            }
            return Err(crate::log::LogError::StreamExists {
                name: spec.name.clone(),
            }
            .into());
        }
        let config = StreamConfig {
            retention: spec.retention,
            compaction: spec.compaction.clone(),
            replication: Some(spec.replication.clone()),
            max_message_bytes: spec.max_message_bytes,
        };
        // A peer's request gets the same checks as a client's.
        config.validate().map_err(Error::invalid)?;
        self.check_compaction_plugin(&config).await?;
        let info = self
            .inner
            .log
            .create_stream_as(&spec.name, spec.partitions, config, spec.created_ms)
            .await?;
        if let Some(c) = &self.inner.cluster {
            c.wake();
        }
        Ok(info)
    }

    /// Deletes the replicated stream `name` on the other nodes (best effort:
    /// a node that is down keeps it). A peer deletes only a replicated
    /// stream of that name, never one of its own that is not replicated.
    /// Returns how many peers deleted one, and the errors of those that
    /// could not be asked.
    pub(super) async fn delete_on_peers(&self, name: &str) -> (usize, Vec<String>) {
        let Some(cluster) = &self.inner.cluster else {
            return (0, Vec::new());
        };
        let peers = cluster.peers().len().saturating_sub(1);
        let body = serde_json::json!({ "name": name, "replicated_only": true });
        let mut absent = 0;
        let failed: Vec<String> = self
            .on_peers("/internal/streams/delete", &body)
            .await
            .into_iter()
            .filter_map(|(n, e)| match e {
                ClusterError::Peer { code, .. } if code == "stream_not_found" => {
                    absent += 1;
                    None
                }
                e => Some(format!("node {n}: {e}")),
            })
            .collect();
        (peers.saturating_sub(absent + failed.len()), failed)
    }

    /// Posts `body` to `path` on every other node of the cluster at once
    /// (none without a cluster); the nodes that failed, and why.
    pub(super) async fn on_peers<T: Serialize + Sync>(&self, path: &str, body: &T) -> Vec<(u32, ClusterError)> {
        self.post_to_peers(path, body, 64 * 1024)
            .await
            .into_iter()
            .filter_map(|(n, r)| r.err().map(|e| (n, e)))
            .collect()
    }

    /// Posts `body` to `path` on every other node of the cluster at once
    /// (none without a cluster); each node's answer (at most `cap` bytes)
    /// or why it failed.
    pub(super) async fn post_to_peers<T: Serialize + Sync>(
        &self,
        path: &str,
        body: &T,
        cap: usize,
    ) -> Vec<(u32, Result<bytes::Bytes, ClusterError>)> {
        let Some(cluster) = &self.inner.cluster else {
            return Vec::new();
        };
        let timeout = cluster.settings().peer_timeout;
        let others = cluster.peer_ids();
        let calls = others.iter().map(|n| cluster.post_capped(*n, path, body, cap, timeout));
        let results = futures::future::join_all(calls).await;
        others.into_iter().zip(results).collect()
    }

    /// Appends like [`Host::append`]; with [`Acks::All`] on a replicated
    /// partition, returns once every in-sync replica holds the records (or
    /// fails with `replication_timeout` after `acks_timeout`: the records are
    /// durable on the leader and may still reach the followers).
    pub async fn append_acks(
        &self,
        stream: &str,
        partition: u32,
        records: &[Record],
        acks: Acks,
    ) -> Result<Appended, Error> {
        self.append_queued(stream, partition, records, acks, None).await?.await
    }

    /// Appends an idempotent producer's batch like [`Host::append_acks`]: a
    /// retried batch is answered with its first offsets (once the in-sync
    /// replicas hold it, for [`Acks::All`]) and not written twice; a
    /// sequence gap is `out_of_order_sequence`, an older epoch
    /// `invalid_producer_epoch`.
    pub async fn append_idempotent(
        &self,
        stream: &str,
        partition: u32,
        records: &[Record],
        producer: ProducerBatch,
        acks: Acks,
    ) -> Result<Appended, Error> {
        self.append_queued(stream, partition, records, acks, Some(producer))
            .await?
            .await
    }

    /// Queues an append like [`Host::append_acks`] (or, with `producer`,
    /// [`Host::append_idempotent`]) and returns once it has its offsets and
    /// its place in the WAL; the returned future resolves when the
    /// acknowledgement asked for holds. Appends queued one after another
    /// land in that order, so a caller (a Kafka connection) can queue the
    /// next request's appends while earlier ones are being synced.
    pub async fn append_queued(
        &self,
        stream: &str,
        partition: u32,
        records: &[Record],
        acks: Acks,
        producer: Option<ProducerBatch>,
    ) -> Result<PendingAppend, Error> {
        super::committed::refuse_internal(stream, "write to")?;
        let cluster = self
            .inner
            .cluster
            .clone()
            .filter(|_| acks == Acks::All && self.inner.log.replica(stream, partition).is_ok());
        if let Some(c) = &cluster {
            c.check_min_in_sync(stream, partition)?;
        }
        let log = &self.inner.log;
        let queued = match producer {
            None => log.append_queued(stream, partition, records).await,
            Some(p) => log.append_idempotent_queued(stream, partition, records, p).await,
        };
        let pending = queued.map_err(|e| self.log_error(stream, partition, e))?;
        let (host, stream) = (self.clone(), stream.to_string());
        Ok(Box::pin(async move {
            let appended = pending.await.map_err(|e| host.log_error(&stream, partition, e))?;
            if let Some(c) = cluster {
                c.wait_acks(&stream, partition, appended.base_offset + appended.count as u64)
                    .await?;
            }
            Ok(appended)
        }))
    }

    /// A log error as the node's, with the leader's address on `not_leader`.
    pub(super) fn log_error(&self, stream: &str, partition: u32, e: crate::log::LogError) -> Error {
        match e {
            crate::log::LogError::NotLeader { leader, .. } => self.not_leader(stream, partition, leader),
            e => e.into(),
        }
    }

    /// Whether this node's calls to cluster node `node` were last refused a
    /// connection, recently and with none reaching it since: evidence it
    /// is down (false for this node, and without a cluster).
    pub fn peer_down(&self, node: u32) -> bool {
        self.inner.cluster.as_ref().is_some_and(|c| c.peer_down(node))
    }

    /// A producer id never handed out before (Kafka InitProducerId).
    pub fn allocate_producer_id(&self) -> i64 {
        self.inner.log.allocate_producer_id()
    }

    /// The idempotent producers with state on `stream`/`partition`, by id
    /// (Kafka DescribeProducers): on a replicated partition only its leader
    /// answers (`not_leader` elsewhere); a view has none of its own.
    pub fn describe_producers(&self, stream: &str, partition: u32) -> Result<Vec<ActiveProducer>, Error> {
        self.stream_end(stream, partition)?;
        if self.source_of(stream).is_some() {
            return Ok(Vec::new());
        }
        (self.inner.log)
            .active_producers(stream, partition)
            .map_err(|e| self.log_error(stream, partition, e))
    }

    /// The `not_leader` error naming the leader's address.
    pub(super) fn not_leader(&self, stream: &str, partition: u32, leader: u32) -> Error {
        let addr = self
            .inner
            .cluster
            .as_ref()
            .and_then(|c| c.peers().get(&leader).cloned())
            .unwrap_or_default();
        Error::new(
            ErrorKind::Misdirected,
            "not_leader",
            format!("this node does not lead stream `{stream}` partition {partition}; node {leader} ({addr}) does"),
        )
    }

    /// The node an internal call proves it is, from its `Authorization`
    /// header and, on a node with `[tls] client_ca`, the certificate its
    /// connection showed: that must name the address of the node the proof
    /// names (`[cluster] nodes`), so holding the secret is not enough to
    /// act for another node. `Err` says what is missing.
    pub fn verify_peer(
        &self,
        authorization: Option<&str>,
        certificate: Option<&rustls_pki_types::CertificateDer<'_>>,
    ) -> Result<u32, &'static str> {
        const NO_PROOF: &str = "internal routes take a cluster node's proof (`Authorization: SluicePeer ...`)";
        let cluster = self.inner.cluster.as_ref().ok_or(NO_PROOF)?;
        let secret = cluster.settings().secret.as_deref().ok_or(NO_PROOF)?;
        let node = authorization
            .and_then(|a| crate::cluster::peer_auth::verify(secret, a))
            .filter(|n| cluster.peers().contains_key(n))
            .ok_or(NO_PROOF)?;
        if self.inner.settings.tls.client_ca.is_none() {
            return Ok(node);
        }
        let host = cluster
            .peers()
            .get(&node)
            .and_then(|base| reqwest::Url::parse(base).ok())
            .and_then(|u| u.host_str().map(str::to_string));
        match (certificate, host) {
            (Some(cert), Some(host)) if crate::tls::names(cert, &host) => Ok(node),
            (None, _) => Err(
                "internal calls to a node with client certificates come with the calling node's own \
                 certificate",
            ),
            _ => Err(
                "the connection's certificate does not name the address of the node the proof names \
                 (`[cluster] nodes`): a node acts only in its own name",
            ),
        }
    }

    /// Whether this node is part of a cluster (internal routes exist).
    pub fn in_cluster(&self) -> bool {
        self.inner.cluster.is_some()
    }

    /// A replicated partition's leader, epoch, high watermark, in-sync set
    /// and replicas (`None` when the partition is not replicated).
    pub fn replication_status(&self, stream: &str, partition: u32) -> Option<ReplicationStatus> {
        self.inner.cluster.as_ref()?.status(stream, partition).ok()
    }

    /// Answers a follower's fetch (the body of `/internal/replication/fetch`).
    pub async fn serve_fetch(&self, req: crate::cluster::wire::FetchRequest) -> Result<Vec<u8>, Error> {
        let resp = self.cluster()?.serve_fetch(req).await?;
        Ok(resp.encode()?)
    }

    /// This node's stored batches of a replicated partition, in the fetch
    /// answer's format (`/internal/replication/read`).
    pub async fn serve_read(&self, req: crate::cluster::leader::RawReadRequest) -> Result<Vec<u8>, Error> {
        let resp = self.cluster()?.serve_read(req).await?;
        Ok(resp.encode()?)
    }

    /// This node's view of a replicated partition (for the other nodes).
    pub fn partition_state(&self, stream: &str, partition: u32) -> Result<PartitionState, Error> {
        Ok(self.cluster()?.local_state(stream, partition)?)
    }

    /// Applies another node's leader change here.
    pub async fn apply_leader(&self, change: LeaderChange) -> Result<PartitionState, Error> {
        Ok(self.cluster()?.apply_leader(change).await?)
    }

    /// Moves a partition's leadership to node `target` (an in-sync replica
    /// unless `force`); returns the new leader's state. Manual: there is no
    /// automatic failover.
    pub async fn move_leader(
        &self,
        stream: &str,
        partition: u32,
        target: u32,
        force: bool,
    ) -> Result<PartitionState, Error> {
        Ok(self.cluster()?.move_leader(stream, partition, target, force).await?)
    }

    /// Runs a leader election (see [`ElectionKind`]); `None` when none is
    /// needed, as on a partition that is not replicated (its one replica
    /// leads) or of a view. The move runs to its end even if the caller
    /// stops waiting: a move cut off halfway would leave the old leader
    /// fenced and no new one.
    pub async fn elect_leader(
        &self,
        stream: &str,
        partition: u32,
        kind: ElectionKind,
    ) -> Result<Option<PartitionState>, Error> {
        self.stream_end(stream, partition)?;
        if self.inner.log.replica(stream, partition).is_err() {
            return Ok(None);
        }
        let cluster = self.cluster()?.clone();
        let stream = stream.to_string();
        let run = tokio::spawn(async move { cluster.elect_leader(&stream, partition, kind).await });
        match run.await {
            Ok(done) => Ok(done?),
            Err(e) => Err(Error::new(
                ErrorKind::Internal,
                "internal",
                format!("the election task failed: {e}"),
            )),
        }
    }
}

/// A change that reached some nodes but not all (503 `replica_unavailable`):
/// `message` says which and what to do.
/// Each failed node and why, as an error message lists them.
pub(super) fn failures(failed: &[(u32, ClusterError)]) -> Vec<String> {
    failed.iter().map(|(n, e)| format!("node {n}: {e}")).collect()
}

pub(super) fn replica_unavailable(message: String) -> Error {
    Error::new(ErrorKind::Unavailable, "replica_unavailable", message)
}
