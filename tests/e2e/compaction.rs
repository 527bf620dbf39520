//! Compaction, black-box: a compacted stream keeps the latest record per key
//! (json-key policy) across SIGKILLs that land while compaction runs.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_test_artifacts as wasm;

use crate::support::{self, Rng, Server, ServerOptions, expect_json};

const CONFIG: &str = r#"
upload_min_bytes = "1B"
upload_interval = "0s"
upload_chunk_bytes = "8KiB"
segment_bytes = "256KiB"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_per_key_survives_sigkill_during_compaction() {
    let (mut rng, seed) = Rng::from_env_or_time();
    let mut server = Server::start_with(ServerOptions {
        config: Some(CONFIG.into()),
        ..ServerOptions::default()
    })
    .await;
    let client = support::client();
    let resp = client
        .put(server.url("/plugins/keys"))
        .body(wasm::read(wasm::JSON_KEY))
        .send()
        .await
        .expect("PUT plugin");
    expect_json(resp, StatusCode::CREATED).await;
    let body = json!({
        "name": "users", "cleanup": "compact",
        "compaction": {"plugin": "keys", "config": {"pointer": "/id"}, "min_cleanable_dirty_ratio": 0.0},
    });
    let resp = client
        .post(server.url("/streams"))
        .json(&body)
        .send()
        .await
        .expect("POST stream");
    expect_json(resp, StatusCode::CREATED).await;

    // 40 keys, 3000 updates; remember each key's latest value.
    let mut latest: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for b in 0..30u64 {
        let recs: Vec<Value> = (0..100u64)
            .map(|i| {
                let n = b * 100 + i;
                let value = json!({"id": format!("k{}", n % 40), "n": n, "pad": "x".repeat((n % 50) as usize)});
                json!({"value": value.to_string()})
            })
            .collect();
        let offsets = support::produce(&client, &server, "users", 0, &Value::Array(recs.clone())).await;
        for (o, r) in offsets.iter().zip(&recs) {
            let v: Value = serde_json::from_str(r["value"].as_str().unwrap()).unwrap();
            latest.insert(
                v["id"].as_str().unwrap().to_string(),
                (*o, r["value"].as_str().unwrap().to_string()),
            );
        }
    }
    // Compaction runs on its own (dirty ratio 0); kill it mid-flight.
    for cycle in 0..3 {
        let _ = client.post(server.url("/streams/users/compact")).send().await;
        tokio::time::sleep(Duration::from_millis(rng.range(0, 400))).await;
        server.kill();
        server.restart().await;
        eprintln!("seed {seed}: cycle {cycle} killed and restarted");
    }
    // Bounded wait until everything is tiered and compacted.
    let mut done = false;
    for _ in 0..600 {
        let _ = client.post(server.url("/streams/users/compact")).send().await;
        let st = expect_json(
            client
                .get(server.url("/streams/users/compaction"))
                .send()
                .await
                .expect("GET"),
            StatusCode::OK,
        )
        .await;
        // The committed checkpoint: a run that finished before the last
        // kill leaves no last_result in the new process, but the checkpoint.
        if st["partitions"][0]["cleaned_end"].as_u64() == Some(3000) {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        done,
        "seed {seed}: compaction never covered the stream: {}",
        server.log_tail(20)
    );
    let records = support::read_gapped(&client, &server, "users", 0).await;
    let mut got: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for r in &records {
        let value = r["value"].as_str().expect("text value").to_string();
        let v: Value = serde_json::from_str(&value).expect("json value");
        let id = v["id"].as_str().expect("id").to_string();
        assert_eq!(
            v["n"].as_u64(),
            r["offset"].as_u64(),
            "seed {seed}: a record moved offsets"
        );
        got.insert(id, (r["offset"].as_u64().unwrap(), value));
    }
    assert_eq!(got, latest, "seed {seed}: the latest value per key must survive");
    assert_eq!(records.len(), 40, "seed {seed}: only the latest per key remains");
}
