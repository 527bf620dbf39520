//! Internal routes serve only cluster nodes: without a node's proof (or
//! with a client's token, or a proof made with another secret) they answer
//! 401; a node's proof does not let it fetch in another node's name (which
//! would make it count as that replica for `acks=all`); a node without a
//! `[cluster]` has no internal routes at all.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::replication_support::{Cluster, SECRET, STREAM, peer_proof};
use crate::support::{self, Server};

async fn post(cluster: &Cluster, auth: Option<String>, body: &Value) -> (StatusCode, Value) {
    let mut req = cluster
        .client
        .post(cluster.node(1).url("/internal/replication/fetch"))
        .json(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("post");
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_routes_take_only_a_nodes_proof_in_its_own_name() {
    let cluster = Cluster::start("1MiB").await;
    let status = support::expect_json(
        cluster
            .client
            .get(cluster.node(1).url(&format!("/streams/{STREAM}")))
            .send()
            .await
            .expect("describe"),
        StatusCode::OK,
    )
    .await;
    let created_ms = status["created_ms"].as_u64().expect("created_ms");
    let fetch = |replica: u32| {
        json!({"stream": STREAM, "created_ms": created_ms, "partition": 0, "replica": replica,
               "fetch_offset": 0, "leader_epoch": 0, "last_epoch": null, "max_bytes": 1024, "wait_ms": 0})
    };
    for auth in [
        None,
        Some("Bearer anything".to_string()),
        Some(peer_proof("not-the-secret", 2)),
    ] {
        let (s, body) = post(&cluster, auth.clone(), &fetch(2)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{auth:?}: {body}");
    }
    // Node 3's proof, fetching as node 2: refused.
    let (s, body) = post(&cluster, Some(peer_proof(SECRET, 3)), &fetch(2)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("in the name of")),
        "{body}"
    );
    // In its own name it is served.
    let resp = cluster
        .client
        .post(cluster.node(1).url("/internal/replication/fetch"))
        .header("authorization", peer_proof(SECRET, 2))
        .json(&fetch(2))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp.text().await);

    // A single node has no internal routes.
    let single = Server::start().await;
    let resp = support::client()
        .post(single.url("/internal/replication/fetch"))
        .header("authorization", peer_proof(SECRET, 2))
        .json(&fetch(2))
        .send()
        .await
        .expect("post");
    support::expect_error(resp, StatusCode::NOT_FOUND, "not_in_cluster").await;
}
