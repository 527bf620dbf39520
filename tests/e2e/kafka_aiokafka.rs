//! aiokafka (asyncio; its own producer, fetcher and group coordinator) end
//! to end: its admin client creates a topic; idempotent producers send
//! records with keys, headers and create times under every compression
//! codec; two members of one consumer group share the partitions and read
//! every record once, byte for byte, and commit where they stopped; HTTP
//! reads the same records at the same offsets; a transactional producer is
//! refused with the error aiokafka expects.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::kafka_support::{hex, py};
use crate::support::{self, Server};

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const TS: u64 = 1_700_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiokafka_produces_consumes_in_a_group_and_commits() {
    let server = Server::start().await;
    let records: Vec<Value> = (0..60u64)
        .map(|i| {
            json!({"value": hex(format!("aio-{i}").as_bytes()), "key": hex(format!("k{}", i % 7).as_bytes()),
                   "partition": i % 3, "timestamp": TS + i * 1000, "codec": CODECS[(i % 5) as usize],
                   "headers": [["h", hex(format!("x{i}").as_bytes())]]})
        })
        .collect();
    let out = py(
        "aiokafka",
        "roundtrip",
        &json!({"bootstrap": server.kafka(), "topic": "aio", "partitions": 3, "group": "aio-group",
                "records": records}),
    );
    assert_eq!(
        out["transactional_error"], "TransactionalIdAuthorizationFailed",
        "{out}"
    );
    // Where each value went.
    let placed: BTreeMap<String, (u64, u64)> = out["produced"]
        .as_array()
        .unwrap_or_else(|| panic!("{out}"))
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap_or_default().to_string(),
                (p[1].as_u64().unwrap_or(9), p[2].as_u64().unwrap_or(u64::MAX)),
            )
        })
        .collect();
    assert_eq!(placed.len(), 60, "{out}");
    for p in 0..3 {
        let mut offsets: Vec<u64> = placed.values().filter(|(q, _)| *q == p).map(|(_, o)| *o).collect();
        offsets.sort_unstable();
        assert_eq!(offsets, (0..20).collect::<Vec<_>>(), "partition {p}: {out}");
    }
    // Every record read once, as sent.
    let got = out["records"].as_array().unwrap_or_else(|| panic!("{out}"));
    assert_eq!(got.len(), 60, "{out}");
    for r in &records {
        let value = r["value"].as_str().unwrap_or_default();
        let (p, o) = placed[value];
        let m: Vec<&Value> = got.iter().filter(|g| g["value"] == r["value"]).collect();
        assert_eq!(m.len(), 1, "{value} read {} times", m.len());
        let m = m[0];
        assert_eq!(
            (m["partition"].as_u64(), m["offset"].as_u64()),
            (Some(p), Some(o)),
            "{m}"
        );
        assert_eq!(
            (&m["key"], &m["timestamp"], &m["headers"]),
            (&r["key"], &r["timestamp"], &r["headers"]),
            "{m}"
        );
    }
    let members = &out["per_member"];
    assert!(
        members[0].as_u64() > Some(0) && members[1].as_u64() > Some(0),
        "both members read: {out}"
    );
    assert_eq!(out["committed"], json!({"0": 20, "1": 20, "2": 20}), "{out}");
    assert_eq!(out["ends"], out["committed"], "{out}");

    // HTTP reads what aiokafka produced at the same offsets.
    let c = support::client();
    for p in 0..3u32 {
        let http = support::read_all(&c, &server, "aio", p, "").await;
        assert_eq!(http.len(), 20);
        for h in &http {
            let value = h["value"].as_str().unwrap_or_else(|| panic!("{h}"));
            let (q, o) = placed[&hex(value.as_bytes())];
            assert_eq!((q, Some(o)), (u64::from(p), h["offset"].as_u64()), "{h}");
        }
    }
}
