//! Every retry loop of a follower is bounded: a fake leader (raw TCP, so
//! it can misbehave at the byte level) answers garbage, truncated answers,
//! oversized answers, answers that move nothing, error statuses, or closes
//! the connection mid-answer. The follower stops after
//! `fetch_failures_max` requests, says why in status, and asks no more.
//! An unreachable leader, by contrast, is retried with backoff, and so is
//! one that never answers (a network partition).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::tests::wait_until;
use crate::config::ClusterSettings;
use crate::log::meta::{Replication, Retention};
use crate::node::StreamSpec;
use crate::{Host, Settings};

type Counts = Arc<Mutex<HashMap<String, u32>>>;

/// Reads one HTTP request; returns its body.
async fn read_request(sock: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[head_end..head_end + len].to_vec())
}

fn slrf(header: serde_json::Value, data: &[u8]) -> Vec<u8> {
    let head = serde_json::to_vec(&header).unwrap();
    let mut out = b"SLRF\x01".to_vec();
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(data);
    out
}

fn http(status: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Answers each request according to the stream it names.
async fn fake_leader(listener: TcpListener, counts: Counts) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let counts = counts.clone();
        tokio::spawn(async move {
            let Some(body) = read_request(&mut sock).await else {
                return;
            };
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let stream = req["stream"].as_str().unwrap_or("?").to_string();
            *counts.lock().unwrap().entry(stream.clone()).or_default() += 1;
            if stream == "silent" {
                // Reads the request and never answers, the connection
                // left open: a leader across a network partition.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                drop(sock);
                return;
            }
            let base = serde_json::json!({"leader": 1, "leader_epoch": 0, "history": [[0, 0]],
                "high_watermark": 0, "log_start": 0, "log_end": 10, "in_sync": [1, 2]});
            let answer = match stream.as_str() {
                "garbage" => http("200 OK", b"<html>this is not a fetch answer</html>"),
                "truncated" => {
                    let mut h = base.clone();
                    h["batches"] = serde_json::json!([{"base_offset": 0, "count": 10, "len": 1000, "crc": 1}]);
                    http("200 OK", &slrf(h, &[7u8; 100]))
                }
                "oversized" => http("200 OK", &vec![0u8; 2 * 1024 * 1024]),
                "stuck" => http("200 OK", &slrf(base, &[])),
                "failing" => http(
                    "500 Internal Server Error",
                    br#"{"error":{"code":"internal","message":"boom"}}"#,
                ),
                "midclose" => {
                    let mut out =
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\n"
                            .to_vec();
                    out.extend_from_slice(&slrf(base, &[])[..20]);
                    out
                }
                _ => http("404 Not Found", b"{}"),
            };
            let _ = sock.write_all(&answer).await;
            let _ = sock.shutdown().await;
        });
    }
}

const MODES: [&str; 6] = ["garbage", "truncated", "oversized", "stuck", "failing", "midclose"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_leader_stops_the_follower_after_a_bounded_number_of_requests() {
    let dir = tempfile::tempdir().unwrap();
    let fake = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_addr = fake.local_addr().unwrap().to_string();
    let counts: Counts = Arc::default();
    tokio::spawn(fake_leader(fake, counts.clone()));
    // Node 3's address: nobody listens there.
    let nobody = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nobody_addr = nobody.local_addr().unwrap().to_string();
    drop(nobody);
    let max_failures = 3;
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        cluster: Some(ClusterSettings {
            node_id: 2,
            secret: Some("test-cluster-secret".into()),
            nodes: [("1", fake_addr), ("2", "127.0.0.1:1".into()), ("3", nobody_addr)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            replication_max_bytes: bytesize::ByteSize::kib(64),
            fetch_failures_max: max_failures,
            peer_timeout: Duration::from_millis(500),
            fetch_wait: Duration::from_millis(100),
            ..ClusterSettings::default()
        }),
        ..Settings::default()
    };
    let host = Host::open(settings).await.unwrap();
    let spec = |name: &str, leader: u32| StreamSpec {
        name: name.into(),
        partitions: 1,
        created_ms: 1,
        retention: Retention::default(),
        replication: Replication {
            factor: 2,
            assignment: vec![vec![leader, 2]],
            min_insync_replicas: None,
        },
        compaction: None,
        max_message_bytes: None,
    };
    for mode in MODES {
        host.create_from_spec(&spec(mode, 1)).await.unwrap();
    }
    host.create_from_spec(&spec("unreachable", 3)).await.unwrap();
    host.create_from_spec(&spec("silent", 1)).await.unwrap();
    for mode in MODES {
        wait_until(&format!("the `{mode}` follower stalls"), async || {
            host.replication_status(mode, 0)
                .and_then(|s| s.follower)
                .is_some_and(|f| f.state == "stalled")
        })
        .await;
    }
    // No request after the stall: the loop is bounded, not slowed down.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for mode in MODES {
        let f = host.replication_status(mode, 0).unwrap().follower.unwrap();
        assert_eq!(f.failures, max_failures, "{mode}: {f:?}");
        let error = f.last_error.clone().unwrap_or_default();
        assert!(!error.is_empty(), "{mode}: the error is shown");
        assert_eq!(
            counts.lock().unwrap().get(mode).copied(),
            Some(max_failures),
            "{mode}: requests made ({error})"
        );
        assert_eq!(
            host.log().replica(mode, 0).unwrap().log_end,
            0,
            "{mode}: nothing was appended"
        );
    }
    // An unreachable leader is retried (with backoff), never reported stalled.
    wait_until("the `unreachable` follower backs off", async || {
        host.replication_status("unreachable", 0)
            .and_then(|s| s.follower)
            .is_some_and(|f| f.state == "backoff")
    })
    .await;
    let f = host.replication_status("unreachable", 0).unwrap().follower.unwrap();
    assert_eq!((f.state.as_str(), f.failures), ("backoff", 0), "{f:?}");
    assert!(f.last_error.unwrap_or_default().contains("unreachable"));
    // So is a leader that never answers: every call times out, and none
    // counts towards the stop.
    wait_until("the `silent` leader asked more often than failures stop", async || {
        counts.lock().unwrap().get("silent").copied().unwrap_or(0) > max_failures + 1
    })
    .await;
    let f = host.replication_status("silent", 0).unwrap().follower.unwrap();
    assert_eq!((f.state.as_str(), f.failures), ("backoff", 0), "{f:?}");
    assert!(f.last_error.unwrap_or_default().contains("unreachable"));
    host.shutdown().await;
}
