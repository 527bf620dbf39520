//! `[cluster]` settings: this node's id, every node's HTTP and Kafka
//! address, the shared secret, and the replication limits and timeouts,
//! with their defaults. Addresses are checked when read
//! ([`ClusterSettings::peers`], [`ClusterSettings::kafka_peers`]).

use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A static cluster: every node has the same `nodes` map and its own
/// `node_id` (see docs/OPERATIONS.md, Replication).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// This node's id: a key of `nodes`.
    pub node_id: u32,
    /// The secret every node of the cluster shares to prove its node id on
    /// internal routes (required; never a client's `auth_token`). Keep the
    /// config file readable by the node's user only.
    pub secret: Option<String>,
    /// Every node's id and HTTP address (`host:port` or `http://host:port`),
    /// this node included. TOML keys are strings: `nodes = { "1" = "127.0.0.1:8081" }`.
    pub nodes: std::collections::BTreeMap<String, String>,
    /// Every node's Kafka address (`host:port`) as clients reach it, for
    /// Metadata answers. A node missing here is advertised at its HTTP
    /// host with this node's Kafka port.
    pub kafka_nodes: std::collections::BTreeMap<String, String>,
    /// Largest answer to one replication fetch; a batch larger than this
    /// travels as numbered fragments.
    pub replication_max_bytes: ByteSize,
    /// A follower that has not reached the leader's end for this long leaves
    /// the in-sync set.
    #[serde(with = "humantime_serde")]
    pub replica_lag_max: Duration,
    /// How long an `acks=all` produce waits for the in-sync replicas.
    #[serde(with = "humantime_serde")]
    pub acks_timeout: Duration,
    /// Time one call to a peer may take (on top of a fetch's long-poll wait).
    #[serde(with = "humantime_serde")]
    pub peer_timeout: Duration,
    /// How long a follower's fetch waits at the leader for new data.
    #[serde(with = "humantime_serde")]
    pub fetch_wait: Duration,
    /// Failed fetches in a row, with no progress in between, after which a
    /// follower stops and reports the error (an unreachable leader is
    /// retried without this bound, with backoff).
    pub fetch_failures_max: u32,
    /// In-sync replicas (the leader included) an `acks=all` append needs,
    /// capped at the partition's replica count; fewer answer 503
    /// `not_enough_replicas`.
    pub min_insync_replicas: u32,
    /// Replicas of a topic a Kafka client creates with the broker's default
    /// (replication factor -1, and topics auto-created): Kafka's
    /// `default.replication.factor`. Unset: the number of nodes, at most 3.
    /// Kafka clients create only replicated topics in a cluster (factor 1
    /// included: one node holds it), so every node knows them.
    pub default_replication_factor: Option<u32>,
    /// How often a node tells the others what it holds of its replicated
    /// streams and takes what they hold newer: settings stamped newer,
    /// partitions beyond its count, deletes (changes it missed while down
    /// or cut off). At least 100ms.
    #[serde(with = "humantime_serde")]
    pub settings_sync: Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            node_id: 1,
            secret: None,
            nodes: std::collections::BTreeMap::new(),
            kafka_nodes: std::collections::BTreeMap::new(),
            replication_max_bytes: ByteSize::mib(1),
            replica_lag_max: Duration::from_secs(10),
            acks_timeout: Duration::from_secs(30),
            peer_timeout: Duration::from_secs(10),
            fetch_wait: Duration::from_millis(500),
            fetch_failures_max: 8,
            min_insync_replicas: 2,
            default_replication_factor: None,
            settings_sync: Duration::from_secs(30),
        }
    }
}

impl ClusterSettings {
    /// [`ClusterSettings::default_replication_factor`], or the number of
    /// nodes capped at 3 when unset.
    pub fn kafka_replication_factor(&self) -> u32 {
        self.default_replication_factor
            .unwrap_or_else(|| u32::try_from(self.nodes.len().min(3)).unwrap_or(3))
    }

    /// The nodes by numeric id with their base URLs, checked.
    /// Node id -> base URL; a bare `host:port` gets `scheme` (`https` when
    /// `[tls]` is set).
    pub fn peers(&self, scheme: &str) -> Result<std::collections::BTreeMap<u32, String>, Error> {
        let bad = |m: String| Error::invalid(format!("bad setting: cluster: {m}"));
        let mut out = std::collections::BTreeMap::new();
        for (id, addr) in &self.nodes {
            let id = node_id(id).map_err(bad)?;
            let addr = addr.trim().trim_end_matches('/');
            if addr.is_empty() {
                return Err(bad(format!("node {id} has an empty address")));
            }
            let url = if addr.starts_with("http://") || addr.starts_with("https://") {
                addr.to_string()
            } else {
                format!("{scheme}://{addr}")
            };
            reqwest::Url::parse(&url).map_err(|e| bad(format!("node {id} address `{addr}`: {e}")))?;
            out.insert(id, url);
        }
        if !out.contains_key(&self.node_id) {
            return Err(bad(format!("node_id {} is not in nodes", self.node_id)));
        }
        Ok(out)
    }
}

/// A node id as a key of `nodes` or `kafka_nodes` (TOML keys are strings).
fn node_id(key: &str) -> Result<u32, String> {
    key.trim()
        .parse()
        .map_err(|_| format!("node id `{key}` is not a number"))
}

/// Splits `host:port` (a bracketed IPv6 host allowed) into its parts.
pub fn split_host_port(addr: &str) -> Result<(String, u16), String> {
    let addr = addr.trim();
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("`{addr}` is not host:port"))?;
    let port: u16 = port.parse().map_err(|_| format!("`{addr}`: bad port `{port}`"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("`{addr}` has no host"));
    }
    Ok((host.to_string(), port))
}

impl ClusterSettings {
    /// `kafka_nodes` by numeric id, as (host, port), checked.
    pub fn kafka_peers(&self) -> Result<std::collections::BTreeMap<u32, (String, u16)>, Error> {
        let bad = |m: String| Error::invalid(format!("bad setting: cluster.kafka_nodes: {m}"));
        let mut out = std::collections::BTreeMap::new();
        for (id, addr) in &self.kafka_nodes {
            out.insert(node_id(id).map_err(bad)?, split_host_port(addr).map_err(bad)?);
        }
        Ok(out)
    }
}
