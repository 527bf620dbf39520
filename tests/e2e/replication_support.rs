//! The three-node cluster harness of the replication e2e tests: nodes with
//! fixed ports and a shared `[cluster]` map, HTTP helpers, and raw reads of
//! a node's stored batches (`/internal/replication/read`) for byte-for-byte
//! comparison.

use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{self, Server, ServerOptions, expect_error, expect_json};

pub(crate) const STREAM: &str = "s";
/// The test cluster's `[cluster] secret`.
pub(crate) const SECRET: &str = "e2e-cluster-secret";

/// The `Authorization` header node `node` sends to its peers: HMAC-SHA256
/// of `sluice-peer:v1:<node>` under the cluster secret, in hex (see
/// docs/SECURITY.md); computed here independently of the node's code.
pub(crate) fn peer_proof(secret: &str, node: u32) -> String {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    m.update(format!("sluice-peer:v1:{node}").as_bytes());
    let proof: String = m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("SluicePeer {node}:{proof}")
}
pub(crate) const NODES: [u32; 3] = [1, 2, 3];

/// Three nodes of one static cluster, each its own process and data dir.
pub(crate) struct Cluster {
    /// Node `i + 1` at index `i`.
    pub(crate) nodes: Vec<Server>,
    pub(crate) client: reqwest::Client,
}

/// Three distinct free ports (all held until the last one is picked).
pub(crate) fn three_ports() -> [u16; 3] {
    let ls: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    let ports: Vec<u16> = ls.iter().map(|l| l.local_addr().expect("local addr").port()).collect();
    [ports[0], ports[1], ports[2]]
}

/// HTTP and Kafka ports for three nodes, all different.
pub(crate) fn cluster_ports() -> ([u16; 3], [u16; 3]) {
    let ports = three_ports();
    loop {
        let kafka = three_ports();
        if kafka.iter().all(|p| !ports.contains(p)) {
            return (ports, kafka);
        }
    }
}

pub(crate) fn node_config(id: u32, ports: &[u16; 3], kafka: &[u16; 3], replication_max_bytes: &str) -> String {
    node_config_at(id, ["127.0.0.1"; 3], ports, kafka, replication_max_bytes)
}

/// [`node_config`] with node i at `hosts[i - 1]`.
pub(crate) fn node_config_at(
    id: u32,
    hosts: [&str; 3],
    ports: &[u16; 3],
    kafka: &[u16; 3],
    replication_max_bytes: &str,
) -> String {
    let [h1, h2, h3] = hosts;
    // Top-level keys before the `[cluster]` table.
    format!(
        r#"max_request_bytes = "64MiB"

[cluster]
node_id = {id}
secret = "{SECRET}"
nodes = {{ "1" = "{h1}:{p1}", "2" = "{h2}:{p2}", "3" = "{h3}:{p3}" }}
kafka_nodes = {{ "1" = "{h1}:{k1}", "2" = "{h2}:{k2}", "3" = "{h3}:{k3}" }}
replication_max_bytes = "{replication_max_bytes}"
replica_lag_max = "3s"
acks_timeout = "20s"
fetch_wait = "200ms"
settings_sync = "1s"
"#,
        p1 = ports[0],
        p2 = ports[1],
        p3 = ports[2],
        k1 = kafka[0],
        k2 = kafka[1],
        k3 = kafka[2],
    )
}

impl Cluster {
    /// Starts the three nodes (concurrently) and creates stream [`STREAM`]
    /// with one partition on all three, node 1 leading.
    pub(crate) async fn start(replication_max_bytes: &str) -> Cluster {
        Cluster::start_edited(replication_max_bytes, |_, config| config).await
    }

    /// [`Cluster::start`] with each node's config passed through `edit`
    /// (node id, config) first.
    pub(crate) async fn start_edited(replication_max_bytes: &str, edit: impl Fn(u32, String) -> String) -> Cluster {
        let (ports, kafka) = cluster_ports();
        let options = |id: u32| ServerOptions {
            config: Some(edit(id, node_config(id, &ports, &kafka, replication_max_bytes))),
            port: Some(ports[id as usize - 1]),
            kafka_port: Some(kafka[id as usize - 1]),
            ..ServerOptions::default()
        };
        let (n1, n2, n3) = tokio::join!(
            Server::start_with(options(1)),
            Server::start_with(options(2)),
            Server::start_with(options(3)),
        );
        let cluster = Cluster {
            nodes: vec![n1, n2, n3],
            client: support::client(),
        };
        let resp = cluster
            .client
            .post(cluster.node(1).url("/streams"))
            .json(&json!({"name": STREAM, "partitions": 1, "replication_factor": 3, "assignment": [[1, 2, 3]]}))
            .send()
            .await
            .expect("POST /streams");
        let body = expect_json(resp, StatusCode::CREATED).await;
        assert_eq!(
            body["replication"],
            json!({"factor": 3, "assignment": [[1, 2, 3]]}),
            "{body}"
        );
        // Every node has the stream, led by node 1 at epoch 0.
        for id in NODES {
            let r = cluster.replication(id).await;
            assert_eq!(r["leader"], 1, "node {id}: {r}");
            assert_eq!(r["epoch"], 0, "node {id}: {r}");
            assert_eq!(r["is_leader"], id == 1, "node {id}: {r}");
        }
        cluster
    }

    pub(crate) fn node(&self, id: u32) -> &Server {
        &self.nodes[id as usize - 1]
    }

    pub(crate) fn node_mut(&mut self, id: u32) -> &mut Server {
        &mut self.nodes[id as usize - 1]
    }

    /// `POST .../leader` on node `to`, moving the leadership there; returns
    /// the answer (200 asserted).
    pub(crate) async fn move_leader(&self, to: u32) -> Value {
        let resp = self
            .client
            .post(self.node(to).url(&format!("/streams/{STREAM}/partitions/0/leader")))
            .json(&json!({"node": to}))
            .send()
            .await
            .expect("POST .../leader");
        expect_json(resp, StatusCode::OK).await
    }

    /// Every node's Kafka address, comma-separated (a client's bootstrap list).
    pub(crate) fn kafka_bootstrap(&self) -> String {
        self.nodes.iter().map(Server::kafka).collect::<Vec<_>>().join(",")
    }

    pub(crate) fn records_url(&self, id: u32) -> String {
        support::records_url(self.node(id), STREAM, 0)
    }

    /// `GET /streams/s/status` on node `id`: partition 0's `replication`.
    pub(crate) async fn replication(&self, id: u32) -> Value {
        let resp = self
            .client
            .get(self.node(id).url(&format!("/streams/{STREAM}/status")))
            .send()
            .await
            .unwrap_or_else(|e| panic!("status of node {id}: {e}"));
        let body = expect_json(resp, StatusCode::OK).await;
        let r = body["partitions"][0]["replication"].clone();
        assert!(r.is_object(), "node {id}: no replication in status: {body}");
        r
    }

    /// Produces one request of `values` to node `id`; returns the offsets.
    pub(crate) async fn produce(&self, id: u32, acks: &str, values: &[String]) -> Vec<u64> {
        let records: Vec<Value> = values.iter().map(|v| json!({"value": v})).collect();
        let resp = self
            .client
            .post(format!("{}?acks={acks}", self.records_url(id)))
            .json(&records)
            .send()
            .await
            .unwrap_or_else(|e| panic!("produce to node {id}: {e}"));
        let ack = expect_json(resp, StatusCode::OK).await;
        support::check_ack(&ack, values.len()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Asserts that node `id` refuses appends with 421 `not_leader`.
    pub(crate) async fn expect_not_leader(&self, id: u32) {
        let resp = self
            .client
            .post(format!("{}?acks=leader", self.records_url(id)))
            .json(&json!([{"value": "misdirected"}]))
            .send()
            .await
            .unwrap_or_else(|e| panic!("produce to node {id}: {e}"));
        expect_error(resp, StatusCode::MISDIRECTED_REQUEST, "not_leader").await;
    }

    /// Reads one record at `offset` from node `id` (`None`: not visible yet).
    pub(crate) async fn read_one(&self, id: u32, offset: u64) -> Option<Value> {
        let url = format!(
            "{}?offset={offset}&max_records=1&max_bytes={}",
            self.records_url(id),
            16 * 1024 * 1024
        );
        let resp = self
            .client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let page = expect_json(resp, StatusCode::OK).await;
        let records = page["records"].as_array().expect("records");
        records.first().cloned()
    }

    /// Waits until every node's log ends at the leader's end, every
    /// follower's high watermark reached it, and the leader counts all three
    /// in sync. Returns that end.
    pub(crate) async fn wait_converged(&self, leader: u32, timeout: Duration) -> u64 {
        wait_for("all three replicas to converge", timeout, || async {
            let lead = self.replication(leader).await;
            let end = lead["log_end_offset"].as_u64().expect("log_end_offset");
            if lead["in_sync"] != json!([1, 2, 3]) || lead["high_watermark"] != end {
                return Err(format!("leader {leader}: {lead}"));
            }
            for id in NODES.into_iter().filter(|id| *id != leader) {
                let r = self.replication(id).await;
                if r["log_end_offset"] != end || r["high_watermark"] != end || r["leader"] != leader {
                    return Err(format!("node {id} vs leader end {end}: {r}"));
                }
            }
            Ok(end)
        })
        .await
    }

    /// Asserts that every node holds exactly the batches of node `reference`,
    /// byte for byte; returns them.
    pub(crate) async fn assert_identical(&self, reference: u32) -> Vec<RawBatch> {
        let (end, want) = raw_batches(&self.client, self.node(reference)).await;
        for id in NODES.into_iter().filter(|id| *id != reference) {
            let (got_end, got) = raw_batches(&self.client, self.node(id)).await;
            assert_eq!(got_end, end, "node {id}'s log ends elsewhere than node {reference}'s");
            assert_eq!(
                got.len(),
                want.len(),
                "node {id} and node {reference} hold different batch counts"
            );
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(
                    (g.base_offset, g.count, g.bytes.len()),
                    (w.base_offset, w.count, w.bytes.len()),
                    "node {id}'s batch differs from node {reference}'s"
                );
                assert!(
                    g.bytes == w.bytes,
                    "node {id}'s batch at offset {} has other bytes than node {reference}'s",
                    g.base_offset
                );
            }
        }
        want
    }
}

/// One stored batch as `/internal/replication/read` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawBatch {
    pub(crate) base_offset: u64,
    pub(crate) count: u64,
    pub(crate) bytes: Vec<u8>,
}

/// One `/internal/replication/read` of partition 0 on `server`: the
/// answer's JSON header and its data bytes (framing checked).
pub(crate) async fn raw_read(
    client: &reqwest::Client,
    server: &Server,
    offset: u64,
    max_bytes: u64,
) -> (Value, Vec<u8>) {
    let resp = client
        .post(server.url("/internal/replication/read"))
        .header("authorization", peer_proof(SECRET, 1))
        .json(&json!({"stream": STREAM, "partition": 0, "offset": offset, "max_bytes": max_bytes}))
        .send()
        .await
        .expect("POST /internal/replication/read");
    let status = resp.status();
    let body = resp.bytes().await.expect("read raw batches");
    assert_eq!(
        status,
        StatusCode::OK,
        "raw read at {offset}: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        body.len() >= 9 && &body[..4] == b"SLRF",
        "raw read at {offset}: no SLRF magic"
    );
    assert_eq!(body[4], 1, "raw read at {offset}: version");
    let head_len = u32::from_le_bytes(body[5..9].try_into().expect("4 bytes")) as usize;
    assert!(
        9 + head_len <= body.len(),
        "raw read at {offset}: header length past the body"
    );
    let header: Value = serde_json::from_slice(&body[9..9 + head_len]).expect("raw read header JSON");
    (header, body[9 + head_len..].to_vec())
}

/// Every stored batch of partition 0 on `server`, from offset 0 to its log
/// end (which it also returns). Checks each batch's CRC32C, and that the
/// batches tile the offsets without gaps.
pub(crate) async fn raw_batches(client: &reqwest::Client, server: &Server) -> (u64, Vec<RawBatch>) {
    let mut out: Vec<RawBatch> = Vec::new();
    let mut offset = 0u64;
    for _ in 0..10_000 {
        let (header, data) = raw_read(client, server, offset, 64 << 20).await;
        assert!(
            header.get("fragment").is_none_or(Value::is_null),
            "raw read at {offset} answered a fragment with a 64 MiB limit: {header}"
        );
        let log_end = header["log_end"].as_u64().expect("log_end");
        if offset >= log_end {
            assert!(data.is_empty(), "raw read at the log end {log_end} returned data");
            return (log_end, out);
        }
        let batches = header["batches"].as_array().expect("batches");
        assert!(
            !batches.is_empty(),
            "raw read at {offset} below log end {log_end} returned no batch: {header}"
        );
        let mut at = 0usize;
        for b in batches {
            let base = b["base_offset"].as_u64().expect("base_offset");
            let count = b["count"].as_u64().expect("count");
            let len = b["len"].as_u64().expect("len") as usize;
            let crc = b["crc"].as_u64().expect("crc") as u32;
            assert!(
                at + len <= data.len(),
                "raw read at {offset}: batch at {base} past the body"
            );
            let bytes = data[at..at + len].to_vec();
            at += len;
            assert_eq!(crc32c::crc32c(&bytes), crc, "batch at {base} fails its CRC");
            assert_eq!(base, offset, "batches do not tile the offsets (gap or overlap)");
            assert!(count > 0, "empty batch at {base}");
            offset = base + count;
            out.push(RawBatch {
                base_offset: base,
                count,
                bytes,
            });
        }
        assert_eq!(at, data.len(), "raw read answer has trailing bytes");
    }
    panic!("raw read of {} did not reach the log end", server.url(""));
}

/// Polls `check` every 100 ms until it returns `Ok`, at most `timeout`;
/// panics with the last `Err` then.
pub(crate) async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(why) if Instant::now() >= deadline => panic!("timed out after {timeout:?} waiting for {what}: {why}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A deterministic ASCII value of `len` bytes, different for every `seed`.
pub(crate) fn big_value(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = support::Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    out.extend_from_slice(format!("{seed:04}:").as_bytes());
    while out.len() < len {
        let mut x = rng.next_u64();
        for _ in 0..10 {
            out.push(ALPHABET[(x & 63) as usize]);
            x >>= 6;
        }
    }
    out.truncate(len);
    String::from_utf8(out).expect("ASCII")
}

pub(crate) fn small_value(i: usize) -> String {
    format!("record-{i:05}-{}", "x".repeat(i % 50))
}
