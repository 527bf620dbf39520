//! HTTP helpers for plugin and pipeline tests: upload, consume through a
//! plugin, pipeline create/status, and bounded polling.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_test_artifacts as wasm;

use crate::support::{self, Server};

/// `PUT /plugins/{name}` with raw bytes.
pub async fn put_plugin(client: &reqwest::Client, server: &Server, name: &str, body: Vec<u8>) -> reqwest::Response {
    client
        .put(server.url(&format!("/plugins/{name}")))
        .header(reqwest::header::CONTENT_TYPE, "application/wasm")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT /plugins/{name}: {e}"))
}

/// Uploads a built plugin; asserts 201 and the shape of the answer.
pub async fn upload(client: &reqwest::Client, server: &Server, name: &str, path: &str, want_version: u64) -> Value {
    let bytes = wasm::read(path);
    let size = bytes.len() as u64;
    let resp = put_plugin(client, server, name, bytes).await;
    let body = support::expect_json(resp, StatusCode::CREATED).await;
    assert_eq!(body["name"], name, "{body}");
    assert_eq!(body["version"], want_version, "{body}");
    assert_eq!(body["kind"], "transform", "{body}");
    assert_eq!(body["size"], size, "{body}");
    assert!(body["uploaded_ms"].is_u64(), "{body}");
    body
}

pub async fn get(client: &reqwest::Client, server: &Server, path: &str) -> reqwest::Response {
    client
        .get(server.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

pub async fn delete(client: &reqwest::Client, server: &Server, path: &str) -> reqwest::Response {
    client
        .delete(server.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("DELETE {path}: {e}"))
}

/// `POST /pipelines`; asserts 201 and a running pipeline.
pub async fn create_pipeline(client: &reqwest::Client, server: &Server, spec: &Value) -> Value {
    let resp = client
        .post(server.url("/pipelines"))
        .json(spec)
        .send()
        .await
        .expect("POST /pipelines");
    let body = support::expect_json(resp, StatusCode::CREATED).await;
    assert_eq!(body["name"], spec["name"], "{body}");
    assert_eq!(body["state"], "running", "{body}");
    body
}

pub async fn pipeline_status(client: &reqwest::Client, server: &Server, name: &str) -> Value {
    let resp = get(client, server, &format!("/pipelines/{name}")).await;
    support::expect_json(resp, StatusCode::OK).await
}

/// Names of the stored plugins (`GET /plugins`), sorted.
pub async fn plugin_names(client: &reqwest::Client, server: &Server) -> Vec<String> {
    let body = support::expect_json(get(client, server, "/plugins").await, StatusCode::OK).await;
    let mut names: Vec<String> = body["plugins"]
        .as_array()
        .unwrap_or_else(|| panic!("GET /plugins: no plugins array: {body}"))
        .iter()
        .map(|p| p["name"].as_str().expect("plugin name").to_string())
        .collect();
    names.sort();
    names
}

/// One consume request; `query` without the leading `?`.
pub async fn consume(
    client: &reqwest::Client,
    server: &Server,
    stream: &str,
    partition: u32,
    query: &str,
) -> reqwest::Response {
    let url = format!("{}?{query}", support::records_url(server, stream, partition));
    client
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// `(offset, value)` of the records of a consume page.
pub fn offsets_and_values(page: &Value) -> Vec<(u64, String)> {
    page["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records array: {page}"))
        .iter()
        .map(|r| {
            (
                r["offset"].as_u64().expect("offset"),
                r["value"].as_str().expect("text value").to_string(),
            )
        })
        .collect()
}

pub fn values(page: &Value) -> Vec<String> {
    offsets_and_values(page).into_iter().map(|(_, v)| v).collect()
}

/// Reads a whole partition through a plugin, paging on `next_offset` with
/// small pages (which follow the input, not the output).
pub async fn read_all_through(
    client: &reqwest::Client,
    server: &Server,
    stream: &str,
    partition: u32,
    plugin_query: &str,
) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for _ in 0..10_000 {
        let query = format!("offset={offset}&max_records=2&{plugin_query}");
        let page = support::expect_json(consume(client, server, stream, partition, &query).await, StatusCode::OK).await;
        let next = page["next_offset"].as_u64().expect("next_offset");
        let end = page["end_offset"].as_u64().expect("end_offset");
        let got = offsets_and_values(&page);
        assert!(
            got.iter().all(|(o, _)| *o >= offset && *o < next),
            "{query}: records outside [{offset}, {next}): {page}"
        );
        out.extend(got);
        if next == end {
            return out;
        }
        assert!(next > offset, "{query}: no progress: {page}");
        offset = next;
    }
    panic!("reading {stream}/{partition} through a plugin did not reach the end");
}

/// Produces plain records (text values), asserts the ack.
pub async fn produce_values(client: &reqwest::Client, server: &Server, stream: &str, values: &[&str]) -> Vec<u64> {
    let records: Vec<Value> = values.iter().map(|v| json!({"value": v})).collect();
    support::produce(client, server, stream, 0, &json!(records)).await
}

/// Polls `stream`/0 until it holds exactly `want` values (bounded).
pub async fn wait_for_values(client: &reqwest::Client, server: &Server, stream: &str, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got: Vec<String> = support::read_all(client, server, stream, 0, "")
            .await
            .iter()
            .map(|r| r["value"].as_str().expect("text value").to_string())
            .collect();
        if got == want {
            return;
        }
        assert!(
            got.len() <= want.len() && got[..] == want[..got.len()],
            "{stream}: unexpected contents {got:?}, want {want:?}"
        );
        if Instant::now() >= deadline {
            panic!(
                "{stream}: still {got:?} after 15 s, want {want:?}\n{}",
                server.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
