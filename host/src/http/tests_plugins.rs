//! Plugin endpoints and consume-time filtering, in-process over the router:
//! uploads are validated and versioned, bad plugins are refused with clear
//! 4xx errors, plugin failures at read time are 422 and change nothing.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_test_artifacts as wasm;

use super::tests::{code, request};
use crate::{Host, Settings};

async fn host(dir: &std::path::Path) -> Host {
    let settings = Settings {
        data_dir: dir.to_path_buf(),
        plugin_call_timeout: std::time::Duration::from_millis(300),
        plugin_memory_bytes: bytesize::ByteSize::mib(32),
        ..Settings::default()
    };
    Host::open(settings).await.unwrap()
}

async fn call(app: &Router, method: Method, uri: &str, body: Vec<u8>) -> (StatusCode, Value) {
    request(app, method, uri, Body::from(body), None).await
}

fn values(v: &Value) -> Vec<String> {
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_string())
        .collect()
}

async fn produce(app: &Router, values: &[&str]) {
    let recs: Vec<Value> = values.iter().map(|v| json!({"value": v})).collect();
    let (s, v) = call(
        app,
        Method::POST,
        "/streams/s/partitions/0/records",
        serde_json::to_vec(&recs).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn upload_version_filter_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path()).await;
    let app = crate::http::router(h.clone());
    let (s, v) = call(&app, Method::PUT, "/plugins/upper", wasm::read(wasm::UPPER)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["version"].as_u64(), v["kind"].as_str()),
        (Some(1), Some("transform"))
    );
    let (_, v) = call(&app, Method::PUT, "/plugins/upper", wasm::read(wasm::UPPER)).await;
    assert_eq!(v["version"], 2);
    let (s, v) = call(&app, Method::PUT, "/plugins/policy", wasm::read(wasm::KEEP_ALL_POLICY)).await;
    assert_eq!((s, v["kind"].as_str()), (StatusCode::CREATED, Some("compaction")));
    call(&app, Method::PUT, "/plugins/jf", wasm::read(wasm::JSON_FILTER)).await;

    call(&app, Method::POST, "/streams", br#"{"name":"s"}"#.to_vec()).await;
    produce(&app, &["a", "drop", r#"{"level":"error"}"#, r#"{"level":"info"}"#]).await;
    let (s, v) = call(
        &app,
        Method::GET,
        "/streams/s/partitions/0/records?plugin=upper",
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(values(&v), vec!["A", r#"{"LEVEL":"ERROR"}"#, r#"{"LEVEL":"INFO"}"#]);
    assert_eq!(v["records"][1]["offset"], 2, "output carries its input offset");
    assert_eq!(v["next_offset"], 4, "paging follows the input");
    let uri = "/streams/s/partitions/0/records?plugin=jf&config.field=/level&config.value=error&plugin_version=1";
    let (_, v) = call(&app, Method::GET, uri, vec![]).await;
    assert_eq!(values(&v), vec![r#"{"level":"error"}"#]);
    // Nothing was stored by filtering.
    let (_, v) = call(&app, Method::GET, "/streams/s/partitions/0/records", vec![]).await;
    assert_eq!(
        values(&v),
        vec!["a", "drop", r#"{"level":"error"}"#, r#"{"level":"info"}"#]
    );
    h.shutdown().await;

    let h = host(dir.path()).await;
    let app = crate::http::router(h.clone());
    let (_, v) = call(&app, Method::GET, "/plugins", vec![]).await;
    let names: Vec<&str> = v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["jf", "policy", "upper"]);
    let (_, v) = call(&app, Method::GET, "/plugins/upper", vec![]).await;
    assert_eq!(v["versions"].as_array().unwrap().len(), 2);
    let (_, v) = call(
        &app,
        Method::GET,
        "/streams/s/partitions/0/records?plugin=upper&plugin_version=2",
        vec![],
    )
    .await;
    assert_eq!(values(&v)[0], "A");
    let (s, _) = call(&app, Method::DELETE, "/plugins/upper", vec![]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = call(
        &app,
        Method::GET,
        "/streams/s/partitions/0/records?plugin=upper",
        vec![],
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "plugin_not_found"));
    h.shutdown().await;
    let h = host(dir.path()).await;
    assert_eq!(h.list_plugins().len(), 2, "a deleted plugin stays deleted");
    h.shutdown().await;
}

#[tokio::test]
async fn bad_plugins_and_failing_plugins_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path()).await;
    let app = crate::http::router(h.clone());
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "/plugins/junk",
            b"definitely not wasm".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_plugin",
        ),
        ("/plugins/empty", vec![], StatusCode::BAD_REQUEST, "invalid_request"),
        (
            "/plugins/a%20b",
            wasm::read(wasm::UPPER),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (uri, body, status, want) in cases {
        let (s, v) = call(&app, Method::PUT, uri, body).await;
        assert_eq!((s, code(&v)), (status, want), "{uri}: {v}");
    }
    assert!(h.list_plugins().is_empty(), "a refused upload was stored");

    for (name, path) in [
        ("looper", wasm::LOOPER),
        ("bomb", wasm::MEMORY_BOMB),
        ("panicker", wasm::PANICKER),
    ] {
        call(&app, Method::PUT, &format!("/plugins/{name}"), wasm::read(path)).await;
    }
    call(&app, Method::PUT, "/plugins/policy", wasm::read(wasm::KEEP_ALL_POLICY)).await;
    call(&app, Method::POST, "/streams", br#"{"name":"s"}"#.to_vec()).await;
    produce(&app, &["loop", "bomb", "panic", "fail"]).await;
    let q = |plugin: &str, offset: u32| {
        format!("/streams/s/partitions/0/records?plugin={plugin}&offset={offset}&max_records=1")
    };
    let cases = [
        (q("looper", 0), StatusCode::UNPROCESSABLE_ENTITY, "plugin_timeout"),
        (q("bomb", 1), StatusCode::UNPROCESSABLE_ENTITY, "plugin_memory_limit"),
        (q("panicker", 2), StatusCode::UNPROCESSABLE_ENTITY, "plugin_trapped"),
        (q("panicker", 3), StatusCode::UNPROCESSABLE_ENTITY, "plugin_failed"),
        (
            format!("{}&config.refuse=yes", q("panicker", 0)),
            StatusCode::BAD_REQUEST,
            "plugin_config_rejected",
        ),
        (q("policy", 0), StatusCode::BAD_REQUEST, "wrong_plugin_world"),
        (q("nope", 0), StatusCode::NOT_FOUND, "plugin_not_found"),
        (
            format!("{}&plugin_version=9", q("looper", 0)),
            StatusCode::NOT_FOUND,
            "plugin_version_not_found",
        ),
        (
            "/streams/s/partitions/0/records?config.x=1".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/streams/s/partitions/0/records?bogus=1".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (uri, status, want) in cases {
        let (s, v) = call(&app, Method::GET, &uri, vec![]).await;
        assert_eq!((s, code(&v)), (status, want), "{uri}: {v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // The data is untouched and the server still serves.
    let (s, v) = call(&app, Method::GET, "/streams/s/partitions/0/records", vec![]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(values(&v), vec!["loop", "bomb", "panic", "fail"]);
    h.shutdown().await;
}
