//! `GET /metrics` of a real server: after produce, consume, a plugin call,
//! a trap, a pipeline and an upload, the named series are there with
//! non-zero values (parsed from the Prometheus text format).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sluice_test_artifacts as wasm;

use crate::plugin_api::*;
use crate::support::{self, Server, ServerOptions};

/// The value of the first sample of `name` whose labels include every one
/// of `labels` (`key="value"`), if any.
pub(crate) fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        if metric != name || !labels.iter().all(|want| rest.contains(want)) {
            return None;
        }
        value.parse().ok()
    })
}

pub(crate) async fn scrape(client: &reqwest::Client, server: &Server) -> String {
    let resp = client.get(server.url("/metrics")).send().await.expect("GET /metrics");
    assert_eq!(resp.status(), StatusCode::OK);
    let ctype = resp.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    resp.text().await.expect("metrics body")
}

fn nonzero(text: &str, name: &str, labels: &[&str]) {
    match sample(text, name, labels) {
        Some(v) if v > 0.0 => {}
        other => panic!("{name}{labels:?} should be > 0, is {other:?}; exposition:\n{text}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_named_series_count_what_the_node_did() {
    let config = "upload_min_bytes = \"1B\"\nupload_interval = \"0s\"\n".to_string();
    let server = Server::start_with(ServerOptions {
        config: Some(config),
        ..ServerOptions::default()
    })
    .await;
    let client = support::client();
    support::create_stream(&client, &server, "m", 1).await;
    let records: Vec<_> = (0..20).map(|i| json!({"value": format!("v{i}")})).collect();
    support::produce(&client, &server, "m", 0, &json!(records)).await;
    let page = support::expect_json(consume(&client, &server, "m", 0, "").await, StatusCode::OK).await;
    assert_eq!(values(&page).len(), 20);
    upload(&client, &server, "upper", wasm::UPPER, 1).await;
    upload(&client, &server, "panicker", wasm::PANICKER, 1).await;
    let page = support::expect_json(consume(&client, &server, "m", 0, "plugin=upper").await, StatusCode::OK).await;
    assert_eq!(values(&page)[0], "V0");
    produce_values(&client, &server, "m", &["panic"]).await;
    let resp = consume(&client, &server, "m", 0, "plugin=panicker").await;
    support::expect_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "plugin_trapped").await;
    support::create_stream(&client, &server, "out", 1).await;
    create_pipeline(
        &client,
        &server,
        &json!({"name": "up", "input": "m", "output": "out", "plugin": "upper"}),
    )
    .await;

    // Uploads happen in the background: wait (bounded) until one is counted.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(&client, &server).await;
        if sample(&text, "sluice_uploads_total", &[]).is_some_and(|v| v > 0.0) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    nonzero(&text, "sluice_append_records_total", &[r#"stream="m""#]);
    nonzero(&text, "sluice_append_bytes_total", &[r#"stream="m""#]);
    nonzero(&text, "sluice_append_seconds_count", &[]);
    nonzero(&text, "sluice_read_records_total", &[r#"stream="m""#]);
    nonzero(&text, "sluice_wal_fsyncs_total", &[]);
    nonzero(&text, "sluice_wal_fsync_seconds_count", &[]);
    nonzero(&text, "sluice_wal_bytes", &[]);
    nonzero(&text, "sluice_wal_segments", &[]);
    nonzero(&text, "sluice_wal_recovery_seconds", &[]);
    nonzero(&text, "sluice_uploads_total", &[]);
    nonzero(&text, "sluice_upload_bytes_total", &[]);
    nonzero(&text, "sluice_plugin_calls_total", &[r#"plugin="upper""#]);
    nonzero(&text, "sluice_plugin_call_seconds_count", &[r#"plugin="upper""#]);
    nonzero(
        &text,
        "sluice_plugin_traps_total",
        &[r#"plugin="panicker""#, r#"reason="trap""#],
    );
    nonzero(
        &text,
        "sluice_http_requests_total",
        &[
            r#"route="/streams/{name}/partitions/{partition}/records""#,
            r#"method="POST""#,
            r#"status="200""#,
        ],
    );
    nonzero(
        &text,
        "sluice_http_request_seconds_count",
        &[r#"route="/plugins/{name}""#],
    );
    // A pipeline's lag gauge exists whatever its value.
    assert!(
        sample(&text, "sluice_pipeline_lag_records", &[r#"pipeline="up""#]).is_some(),
        "{text}"
    );
    assert!(
        text.contains("# HELP sluice_append_records_total"),
        "HELP lines are there"
    );

    // Counters only grow: more appends, a larger count.
    let before = sample(&text, "sluice_append_records_total", &[r#"stream="m""#]).unwrap_or_default();
    produce_values(&client, &server, "m", &["x", "y"]).await;
    let after = sample(
        &scrape(&client, &server).await,
        "sluice_append_records_total",
        &[r#"stream="m""#],
    );
    assert_eq!(after, Some(before + 2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_when_one_is_set() {
    let server = Server::start_with(ServerOptions::args(&["--auth-token", "s3cret"])).await;
    let client = support::client();
    let resp = client.get(server.url("/metrics")).send().await.expect("GET /metrics");
    support::expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let resp = client
        .get(server.url("/metrics"))
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_resolve_to_nothing_never_become_labels() {
    let server = Server::start().await;
    let client = support::client();
    support::create_stream(&client, &server, "real", 1).await;
    for i in 0..50 {
        let resp = client
            .post(server.url(&format!("/streams/ghost-{i}/partitions/0/records")))
            .json(&json!([{"value": "x"}]))
            .send()
            .await
            .expect("produce");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        // A partition the real stream does not have, too.
        let resp = client
            .post(server.url(&format!("/streams/real/partitions/{}/records", 100 + i)))
            .json(&json!([{"value": "x"}]))
            .send()
            .await
            .expect("produce");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
    let text = scrape(&client, &server).await;
    assert!(!text.contains("ghost-"), "unresolved names became labels:\n{text}");
    nonzero(&text, "sluice_append_errors_total", &["stream=\"\""]);
}

/// A scrape names only partitions with something to report: of a stream
/// of 200 idle partitions, only the one holding data not yet uploaded has
/// an upload-lag series. Deleting the stream removes all its series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_partitions_and_deleted_streams_have_no_series() {
    let config = "upload_min_bytes = \"1GiB\"\nupload_interval = \"1h\"\n".to_string();
    let server = Server::start_with(ServerOptions {
        config: Some(config),
        ..ServerOptions::default()
    })
    .await;
    let client = support::client();
    support::create_stream(&client, &server, "wide", 200).await;
    let records: Vec<_> = (0..5).map(|i| json!({"value": format!("v{i}")})).collect();
    let resp = client
        .post(server.url("/streams/wide/partitions/3/records"))
        .json(&json!(records))
        .send()
        .await
        .expect("produce");
    assert_eq!(resp.status(), StatusCode::OK);
    let page = support::expect_json(consume(&client, &server, "wide", 3, "").await, StatusCode::OK).await;
    assert_eq!(values(&page).len(), 5);

    let text = scrape(&client, &server).await;
    let lag_series = text
        .lines()
        .filter(|l| l.starts_with(r#"sluice_upload_lag_records{stream="wide""#))
        .count();
    assert_eq!(lag_series, 1, "only the partition with data to upload:\n{text}");
    assert_eq!(
        sample(
            &text,
            "sluice_upload_lag_records",
            &[r#"stream="wide""#, r#"partition="3""#]
        ),
        Some(5.0)
    );
    nonzero(&text, "sluice_append_records_total", &[r#"stream="wide""#]);
    nonzero(&text, "sluice_read_records_total", &[r#"stream="wide""#]);

    let resp = client.delete(server.url("/streams/wide")).send().await.expect("delete");
    assert!(resp.status().is_success(), "{}", resp.status());
    let text = scrape(&client, &server).await;
    assert!(
        !text.contains(r#"stream="wide""#),
        "series of a deleted stream:\n{text}"
    );
}
