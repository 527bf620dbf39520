//! The shape of `GET /streams/{name}/status`, and retention validation at
//! stream creation.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;
use crate::support::{self, Server, expect_error, expect_json};

/// `v` without the `known` flag (whether the manifest was read yet, which
/// depends on timing for an idle partition), after checking it is a bool.
fn without_known(v: &Value) -> Value {
    let mut v = v.clone();
    let known = v.as_object_mut().and_then(|o| o.remove("known"));
    assert!(known.as_ref().is_some_and(Value::is_boolean), "tier.known missing: {v}");
    v
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_status_reports_wal_and_tiered_ranges() {
    let store = Store::new(StoreKind::File, "stream_status_reports_wal_and_tiered_ranges").expect("file store");
    let mut server = Server::start_with(store.options(false)).await;
    let client = support::client();
    support::create_stream(&client, &server, STREAM, PARTITIONS).await;

    // A new stream: nothing anywhere.
    let st = status(&client, &server).await;
    assert_eq!(keys(&st), ["name", "partitions"], "{st}");
    let empty_tier = json!({
        "tiered_start": 0, "tiered_end": 0, "segments": 0, "tiered_bytes": 0,
        "epoch": 0, "fenced": false, "last_error": null, "last_upload_ms": null,
    });
    for (i, p) in parts(&st).iter().enumerate() {
        let mut p = p.clone();
        p["tier"] = without_known(&p["tier"]);
        assert_eq!(
            p,
            json!({
                "partition": i, "start_offset": 0, "end_offset": 0, "wal_start_offset": 0,
                "upload_lag_records": 0, "upload_lag_bytes": 0, "tier": empty_tier,
            }),
            "{st}"
        );
    }

    // Records in the WAL, uploads off: all of it is upload lag.
    let body: Vec<Value> = (0..20).map(|s| record_json(&make_record(0, 0, s), s)).collect();
    let offsets = support::produce(&client, &server, STREAM, 0, &Value::Array(body)).await;
    assert_eq!(offsets, (0..20).collect::<Vec<u64>>());
    let st = status(&client, &server).await;
    let p0 = &parts(&st)[0];
    assert_eq!(
        keys(p0),
        [
            "end_offset",
            "partition",
            "start_offset",
            "tier",
            "upload_lag_bytes",
            "upload_lag_records",
            "wal_start_offset"
        ],
        "{st}"
    );
    assert_eq!(
        keys(&p0["tier"]),
        [
            "epoch",
            "fenced",
            "known",
            "last_error",
            "last_upload_ms",
            "segments",
            "tiered_bytes",
            "tiered_end",
            "tiered_start"
        ],
        "{st}"
    );
    assert_eq!((num(p0, "start_offset"), num(p0, "end_offset")), (0, 20), "{st}");
    assert_eq!(num(p0, "wal_start_offset"), 0, "{st}");
    assert_eq!(num(p0, "upload_lag_records"), 20, "{st}");
    assert!(num(p0, "upload_lag_bytes") > 20 * 200, "{st}");
    assert_eq!(without_known(&p0["tier"]), empty_tier, "{st}");
    assert_eq!(num(&parts(&st)[1], "upload_lag_records"), 0, "{st}");

    // Restarted with eager uploads: the records move to the object store.
    server.signal_and_wait("TERM", Duration::from_secs(30)).await;
    *server.options_mut() = store.options(true);
    server.restart().await;
    let st = wait_status(&server, "partition 0 tiered", |i, p| {
        i == 1 || (num(p, "tier.tiered_end") == 20 && num(p, "upload_lag_records") == 0)
    })
    .await;
    let (p0, mut p1) = (&parts(&st)[0], parts(&st)[1].clone());
    assert_eq!(p0["tier"]["known"], true, "{st}");
    p1["tier"] = without_known(&p1["tier"]);
    assert_eq!((num(p0, "start_offset"), num(p0, "end_offset")), (0, 20), "{st}");
    assert_eq!(num(p0, "upload_lag_bytes"), 0, "{st}");
    assert_eq!(num(p0, "tier.tiered_start"), 0, "{st}");
    assert!(num(p0, "tier.segments") >= 1, "{st}");
    assert!(num(p0, "tier.tiered_bytes") > 20 * 200, "{st}");
    assert!(num(p0, "tier.epoch") >= 1, "{st}");
    assert_eq!(p0["tier"]["fenced"], false, "{st}");
    assert!(p0["tier"]["last_error"].is_null(), "{st}");
    assert!(p0["tier"]["last_upload_ms"].is_u64(), "{st}");
    assert!(num(p0, "wal_start_offset") <= 20, "{st}");
    // The empty partition has nothing to upload and claims nothing.
    assert_eq!(
        p1,
        json!({
            "partition": 1, "start_offset": 0, "end_offset": 0, "wal_start_offset": 0,
            "upload_lag_records": 0, "upload_lag_bytes": 0, "tier": empty_tier,
        }),
        "{st}"
    );
    let ledger = vec![(0..20).map(|s| (s, make_record(0, 0, s))).collect(), BTreeMap::new()];
    check_all(&server, &ledger, Encoding::Base64, "after tiering").await;

    // Unknown stream: 404 with a JSON error.
    let resp = client
        .get(server.url("/streams/no-such-stream/status"))
        .send()
        .await
        .expect("GET status");
    expect_error(resp, StatusCode::NOT_FOUND, "stream_not_found").await;

    // Retention must be positive; a positive one is accepted.
    for bad in [
        json!({"name": "ret", "partitions": 1, "retention_bytes": 0}),
        json!({"name": "ret", "partitions": 1, "retention_ms": 0}),
    ] {
        let resp = client
            .post(server.url("/streams"))
            .json(&bad)
            .send()
            .await
            .expect("POST /streams");
        expect_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    let resp = client.get(server.url("/streams/ret")).send().await.expect("GET stream");
    expect_error(resp, StatusCode::NOT_FOUND, "stream_not_found").await;
    let resp = client
        .post(server.url("/streams"))
        .json(&json!({"name": "ret", "partitions": 1, "retention_bytes": 1_048_576}))
        .send()
        .await
        .expect("POST /streams");
    let created = expect_json(resp, StatusCode::CREATED).await;
    assert_eq!(created["name"], "ret", "{created}");
    let resp = client
        .get(server.url("/streams/ret/status"))
        .send()
        .await
        .expect("GET status");
    let st = expect_json(resp, StatusCode::OK).await;
    assert_eq!(st["name"], "ret", "{st}");
    assert_eq!(parts(&st).len(), 1, "{st}");
    assert_eq!(num(&parts(&st)[0], "end_offset"), 0, "{st}");
}
