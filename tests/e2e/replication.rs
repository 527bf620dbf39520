//! Replication across three real `sluice` processes on 127.0.0.1 (see
//! docs/design/0003-replication.md): large records travelling as fragments
//! while a follower restarts, a follower killed with kill -9 catching up
//! byte for byte, and `acks=all` records surviving kill -9 of the leader
//! followed by a manual leader move; and the CLI's replication commands.
//!
//! Replicas are compared byte for byte through `/internal/replication/read`,
//! which serves a node's stored batches in the fetch answer's format.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{self, Server, ServerOptions, expect_error, expect_json};

const STREAM: &str = "s";
const NODES: [u32; 3] = [1, 2, 3];

/// Three nodes of one static cluster, each its own process and data dir.
struct Cluster {
    /// Node `i + 1` at index `i`.
    nodes: Vec<Server>,
    client: reqwest::Client,
}

/// Three distinct free ports (all held until the last one is picked).
fn three_ports() -> [u16; 3] {
    let ls: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    let ports: Vec<u16> = ls.iter().map(|l| l.local_addr().expect("local addr").port()).collect();
    [ports[0], ports[1], ports[2]]
}

fn node_config(id: u32, ports: &[u16; 3], replication_max_bytes: &str) -> String {
    // Top-level keys before the `[cluster]` table.
    format!(
        r#"max_request_bytes = "64MiB"

[cluster]
node_id = {id}
nodes = {{ "1" = "127.0.0.1:{p1}", "2" = "127.0.0.1:{p2}", "3" = "127.0.0.1:{p3}" }}
replication_max_bytes = "{replication_max_bytes}"
replica_lag_max = "3s"
acks_timeout = "20s"
fetch_wait = "200ms"
"#,
        p1 = ports[0],
        p2 = ports[1],
        p3 = ports[2],
    )
}

impl Cluster {
    /// Starts the three nodes (concurrently) and creates stream [`STREAM`]
    /// with one partition on all three, node 1 leading.
    async fn start(replication_max_bytes: &str) -> Cluster {
        let ports = three_ports();
        let options = |id: u32| ServerOptions {
            config: Some(node_config(id, &ports, replication_max_bytes)),
            port: Some(ports[id as usize - 1]),
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

    fn node(&self, id: u32) -> &Server {
        &self.nodes[id as usize - 1]
    }

    fn node_mut(&mut self, id: u32) -> &mut Server {
        &mut self.nodes[id as usize - 1]
    }

    fn records_url(&self, id: u32) -> String {
        support::records_url(self.node(id), STREAM, 0)
    }

    /// `GET /streams/s/status` on node `id`: partition 0's `replication`.
    async fn replication(&self, id: u32) -> Value {
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
    async fn produce(&self, id: u32, acks: &str, values: &[String]) -> Vec<u64> {
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
    async fn expect_not_leader(&self, id: u32) {
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
    async fn read_one(&self, id: u32, offset: u64) -> Option<Value> {
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
    async fn wait_converged(&self, leader: u32, timeout: Duration) -> u64 {
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
    async fn assert_identical(&self, reference: u32) -> Vec<RawBatch> {
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
struct RawBatch {
    base_offset: u64,
    count: u64,
    bytes: Vec<u8>,
}

/// One `/internal/replication/read` of partition 0 on `server`: the
/// answer's JSON header and its data bytes (framing checked).
async fn raw_read(client: &reqwest::Client, server: &Server, offset: u64, max_bytes: u64) -> (Value, Vec<u8>) {
    let resp = client
        .post(server.url("/internal/replication/read"))
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
async fn raw_batches(client: &reqwest::Client, server: &Server) -> (u64, Vec<RawBatch>) {
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
async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
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
fn big_value(seed: u64, len: usize) -> String {
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

fn small_value(i: usize) -> String {
    format!("record-{i:05}-{}", "x".repeat(i % 50))
}

/// 5 MiB records with a 1 MiB replication limit (every batch travels as
/// fragments) replicate intact while a follower is killed and restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_records_replicate_through_a_follower_restart() {
    const RECORDS: u64 = 12;
    const LEN: usize = 5 * 1024 * 1024;
    let started = Instant::now();
    let mut cluster = Cluster::start("1MiB").await;

    for i in 0..RECORDS {
        if i == 4 {
            let r = cluster.replication(3).await;
            println!("killing node 3 at log end {}", r["log_end_offset"]);
            cluster.node_mut(3).kill();
        }
        if i == 8 {
            cluster.node_mut(3).restart().await;
            let r = cluster.replication(3).await;
            println!("restarted node 3 at log end {}", r["log_end_offset"]);
        }
        let offsets = cluster.produce(1, "leader", &[big_value(i, LEN)]).await;
        assert_eq!(offsets, vec![i], "record {i}");
    }
    println!("produced {RECORDS} records of {LEN} bytes in {:?}", started.elapsed());

    let end = cluster.wait_converged(1, Duration::from_secs(60)).await;
    assert_eq!(end, RECORDS);
    println!("replicas converged at {:?}", started.elapsed());

    let batches = cluster.assert_identical(1).await;
    assert_eq!(batches.len() as u64, RECORDS, "one batch per produce request");
    for b in &batches {
        assert_eq!(b.count, 1);
        assert!(
            b.bytes.len() > LEN,
            "batch at {} is smaller than its record",
            b.base_offset
        );
    }
    // Under a 1 MiB limit such a batch travels as fragments of 1 MiB.
    let (header, data) = raw_read(&cluster.client, cluster.node(3), 0, 1 << 20).await;
    let fragment = &header["fragment"];
    let total = batches[0].bytes.len() as u64;
    assert_eq!(fragment["total_len"], total, "{header}");
    assert_eq!(fragment["index"], 0, "{header}");
    assert_eq!(fragment["of"], total.div_ceil(1 << 20), "{header}");
    assert_eq!(header["batches"], json!([]), "{header}");
    assert!(
        data == batches[0].bytes[..1 << 20],
        "fragment 0 is not the batch's first MiB"
    );

    // The values are intact on the leader and on the restarted follower.
    for id in [1, 3] {
        for i in 0..RECORDS {
            let r = cluster
                .read_one(id, i)
                .await
                .unwrap_or_else(|| panic!("node {id}: no record at {i}"));
            assert_eq!(r["offset"], i, "node {id}");
            let got = r["value"]
                .as_str()
                .unwrap_or_else(|| panic!("node {id}: value at {i} is not text"));
            assert!(got == big_value(i, LEN), "node {id}: value at {i} differs");
        }
    }
    let follower = cluster.replication(3).await;
    assert_eq!(follower["follower"]["state"], "fetching", "{follower}");
    assert_eq!(follower["follower"]["failures"], 0, "{follower}");
    println!(
        "large_records_replicate_through_a_follower_restart took {:?}",
        started.elapsed()
    );
}

/// A follower killed with kill -9 while `acks=all` producers write: acks
/// keep succeeding once it leaves the in-sync set; restarted, it catches up
/// and holds the leader's batches byte for byte, and rejoins the set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_follower_catches_up_byte_for_byte() {
    const REQUESTS: usize = 120;
    const PER_REQUEST: usize = 5;
    let started = Instant::now();
    let mut cluster = Cluster::start("1MiB").await;

    let done = Arc::new(AtomicUsize::new(0));
    let producer = {
        let (client, url, done) = (cluster.client.clone(), cluster.records_url(1), done.clone());
        tokio::spawn(async move {
            let mut slow = Duration::ZERO;
            for r in 0..REQUESTS {
                let values: Vec<String> = (0..PER_REQUEST).map(|j| small_value(r * PER_REQUEST + j)).collect();
                let records: Vec<Value> = values.iter().map(|v| json!({"value": v})).collect();
                let t = Instant::now();
                let resp = client
                    .post(format!("{url}?acks=all"))
                    .json(&records)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("request {r}: {e}"));
                let ack = expect_json(resp, StatusCode::OK).await;
                let offsets = support::check_ack(&ack, PER_REQUEST).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(offsets[0], (r * PER_REQUEST) as u64, "request {r}");
                slow = slow.max(t.elapsed());
                done.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            slow
        })
    };
    let reached = |n: usize| {
        let done = done.clone();
        async move {
            wait_for(
                &format!("{n} acknowledged requests"),
                Duration::from_secs(40),
                || async {
                    let d = done.load(Ordering::SeqCst);
                    if d >= n { Ok(()) } else { Err(format!("{d} so far")) }
                },
            )
            .await
        }
    };

    reached(40).await;
    cluster.node_mut(2).kill();
    println!("killed node 2 after {} requests", done.load(Ordering::SeqCst));
    reached(80).await;
    // Node 2 is out of the in-sync set: that is how the acks went on.
    let lead = cluster.replication(1).await;
    assert_eq!(lead["in_sync"], json!([1, 3]), "{lead}");
    let replica2 = lead["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .find(|r| r["node"] == 2)
        .cloned()
        .expect("replica 2");
    assert_eq!(replica2["in_sync"], false, "{lead}");
    assert!(replica2["lag"].as_u64().expect("lag") > 0, "{lead}");
    cluster.node_mut(2).restart().await;
    println!("restarted node 2 after {} requests", done.load(Ordering::SeqCst));
    let slowest = producer.await.expect("producer task");
    println!("all {REQUESTS} acks=all requests succeeded; slowest took {slowest:?}");
    assert!(slowest < Duration::from_secs(15), "an ack took {slowest:?}");

    let end = cluster.wait_converged(1, Duration::from_secs(30)).await;
    assert_eq!(end, (REQUESTS * PER_REQUEST) as u64);
    let lead = cluster.replication(1).await;
    let replicas = lead["replicas"].as_array().expect("replicas");
    assert!(replicas.iter().all(|r| r["in_sync"] == true && r["lag"] == 0), "{lead}");
    let batches = cluster.assert_identical(1).await;
    assert_eq!(batches.len(), REQUESTS, "one batch per produce request");

    // Node 2 serves every record, in order, at its offset.
    let got = support::read_all(&cluster.client, cluster.node(2), STREAM, 0, "").await;
    assert_eq!(got.len(), REQUESTS * PER_REQUEST);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r["offset"], i as u64);
        assert_eq!(r["value"], small_value(i), "node 2, offset {i}");
    }
    let follower = cluster.replication(2).await;
    assert_eq!(follower["follower"]["state"], "fetching", "{follower}");
    assert_eq!(follower["follower"]["in_sync"], true, "{follower}");
    println!(
        "a_killed_follower_catches_up_byte_for_byte took {:?}",
        started.elapsed()
    );
}

/// Records acknowledged with `acks=all` survive kill -9 of the leader and a
/// manual move of the leadership to a follower; the old leader, restarted,
/// follows the new one and ends up with its batches byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_records_survive_leader_kill_and_move() {
    const BEFORE: usize = 30;
    const AFTER: usize = 10;
    const PER_REQUEST: usize = 3;
    let started = Instant::now();
    let mut cluster = Cluster::start("1MiB").await;

    let mut acked: Vec<(u64, String)> = Vec::new();
    for r in 0..BEFORE {
        let values: Vec<String> = (0..PER_REQUEST).map(|j| small_value(r * PER_REQUEST + j)).collect();
        let offsets = cluster.produce(1, "all", &values).await;
        acked.extend(offsets.into_iter().zip(values));
    }
    let acked_end = acked.len() as u64;
    assert_eq!(acked.last().map(|a| a.0 + 1), Some(acked_end));

    cluster.node_mut(1).kill();
    let resp = cluster
        .client
        .post(cluster.node(2).url(&format!("/streams/{STREAM}/partitions/0/leader")))
        .json(&json!({"node": 2}))
        .send()
        .await
        .expect("POST .../leader");
    let moved = expect_json(resp, StatusCode::OK).await;
    assert_eq!(moved["node"], 2, "{moved}");
    assert_eq!(moved["leader"], 2, "{moved}");
    assert_eq!(moved["epoch"], 1, "{moved}");
    assert_eq!(
        moved["log_end"], acked_end,
        "node 2 holds every acknowledged record: {moved}"
    );
    println!("moved the leadership to node 2 at {:?}: {moved}", started.elapsed());

    // Node 3 follows node 2 now, node 2 takes appends, node 3 does not.
    wait_for("node 3 to follow node 2", Duration::from_secs(10), || async {
        let r = cluster.replication(3).await;
        if r["leader"] == 2 && r["epoch"] == 1 {
            Ok(())
        } else {
            Err(r.to_string())
        }
    })
    .await;
    cluster.expect_not_leader(3).await;

    // Readers of node 2 see exactly the acknowledged records (once its high
    // watermark has moved past them), at their offsets.
    wait_for(
        "node 2 to show the acknowledged records",
        Duration::from_secs(15),
        || async {
            let r = cluster.replication(2).await;
            if r["high_watermark"].as_u64() >= Some(acked_end) {
                Ok(())
            } else {
                Err(r.to_string())
            }
        },
    )
    .await;
    let got = support::read_all(&cluster.client, cluster.node(2), STREAM, 0, "").await;
    let got: Vec<(u64, String)> = got
        .iter()
        .map(|r| {
            (
                r["offset"].as_u64().expect("offset"),
                r["value"].as_str().expect("text value").to_string(),
            )
        })
        .collect();
    assert_eq!(got, acked, "node 2 does not serve exactly the acknowledged records");

    // acks=all on the new leader: succeeds (once node 1 has left the set).
    for r in 0..AFTER {
        let n = BEFORE + r;
        let values: Vec<String> = (0..PER_REQUEST).map(|j| small_value(n * PER_REQUEST + j)).collect();
        let offsets = cluster.produce(2, "all", &values).await;
        assert_eq!(offsets[0], (n * PER_REQUEST) as u64, "request {n}");
        acked.extend(offsets.into_iter().zip(values));
    }
    let lead = cluster.replication(2).await;
    assert_eq!(lead["is_leader"], true, "{lead}");
    assert_eq!(lead["in_sync"], json!([2, 3]), "{lead}");

    // The old leader comes back as a follower of node 2.
    cluster.node_mut(1).restart().await;
    let r = cluster.replication(1).await;
    assert_eq!(r["leader"], 2, "restarted node 1 does not know node 2 leads: {r}");
    assert_eq!(r["is_leader"], false, "{r}");
    cluster.expect_not_leader(1).await;

    let end = cluster.wait_converged(2, Duration::from_secs(30)).await;
    assert_eq!(end, acked.len() as u64);
    cluster.assert_identical(2).await;
    let r = cluster.replication(1).await;
    assert_eq!(r["epoch"], 1, "{r}");
    assert_eq!(r["follower"]["leader"], 2, "{r}");
    assert_eq!(r["follower"]["state"], "fetching", "{r}");
    let got = support::read_all(&cluster.client, cluster.node(1), STREAM, 0, "").await;
    assert_eq!(got.len(), acked.len());
    for (r, (offset, value)) in got.iter().zip(&acked) {
        assert_eq!((&r["offset"], &r["value"]), (&json!(offset), &json!(value)));
    }
    println!(
        "acks_all_records_survive_leader_kill_and_move took {:?}",
        started.elapsed()
    );
}

/// The CLI creates a replicated stream, produces with `--acks all`, shows
/// leaders and the in-sync set, and moves a leader; a produce to the old
/// leader fails naming the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_produces_to_and_moves_a_replicated_stream() {
    use crate::cli_support::{sluice, sluice_in};
    let cluster = Cluster::start("1MiB").await;
    let (n1, n3) = (cluster.node(1), cluster.node(3));
    let created = sluice(
        n1,
        &[
            "stream",
            "create",
            "cli",
            "-p",
            "2",
            "--replication-factor",
            "3",
            "--output",
            "json",
        ],
    )
    .ok();
    assert_eq!(created.json()["replication"]["factor"], 3, "{created:#?}");
    sluice_in(n1, &["produce", "cli", "--acks", "all"], "a\nb\nc\n").ok();
    let status = sluice(n1, &["status", "cli"]).ok();
    assert!(status.stdout.contains("node 1 (epoch 0)"), "{status:#?}");
    assert!(
        status.stdout.contains("1,2,3"),
        "in-sync set of partition 0: {status:#?}"
    );
    let moved = sluice(n3, &["stream", "leader", "cli", "-p", "0", "--node", "3"]).ok();
    assert!(
        moved.stdout.contains("node 3 leads at epoch 1 (log end 3)"),
        "{moved:#?}"
    );
    sluice_in(n1, &["produce", "cli", "--acks", "all"], "d\n").fails(1, "node 3");
    sluice_in(n3, &["produce", "cli", "--acks", "all"], "d\n").ok();
    let read = sluice(n3, &["consume", "cli", "--output", "json"]).ok();
    assert_eq!(crate::cli_support::values(&read), vec!["a", "b", "c", "d"]);
    sluice(n1, &["stream", "create", "bad", "--replication-factor", "0"]).fails(2, "replication-factor");
}
