//! Plugin upload and pipeline limits over the router: oversized uploads,
//! components importing more than WASI or defining too many functions,
//! the version cap with pinned versions, the pipeline cap, and uploads
//! waiting for a compile slot. Each refusal is a clear error and changes
//! nothing.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_test_artifacts as wasm;

use super::tests::{code, request};
use crate::config::PluginSettings;
use crate::{Host, Settings};

async fn host(dir: &std::path::Path, plugins: PluginSettings) -> Host {
    let settings = Settings {
        data_dir: dir.to_path_buf(),
        plugins,
        ..Settings::default()
    };
    Host::open(settings).await.unwrap()
}

async fn call(app: &Router, method: Method, uri: &str, body: Vec<u8>) -> (StatusCode, Value) {
    request(app, method, uri, Body::from(body), None).await
}

async fn versions(app: &Router, name: &str) -> Vec<u64> {
    let (s, v) = call(app, Method::GET, &format!("/plugins/{name}"), vec![]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn uploads_past_the_size_or_function_caps_or_importing_more_than_wasi_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let upper = wasm::read(wasm::UPPER);
    let caps = PluginSettings {
        max_upload_bytes: bytesize::ByteSize::b(upper.len() as u64 - 1),
        ..PluginSettings::default()
    };
    let app = crate::http::router(host(dir.path(), caps).await);
    let (s, v) = call(&app, Method::PUT, "/plugins/up", upper.clone()).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("plugins.max_upload_bytes"),
        "{v}"
    );

    let dir = tempfile::tempdir().unwrap();
    let caps = PluginSettings {
        max_functions: 10,
        ..PluginSettings::default()
    };
    let app = crate::http::router(host(dir.path(), caps).await);
    let (s, v) = call(&app, Method::PUT, "/plugins/up", upper.clone()).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_plugin"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("plugins.max_functions allows 10"),
        "{v}"
    );

    // A component importing something that is not WASI never links: refused
    // from its bytes, before compiling.
    let foreign = wat::parse_str(
        r#"(component
             (import "acme:net/socket" (instance (export "open" (func))))
           )"#,
    )
    .unwrap();
    let app = crate::http::router(host(dir.path(), PluginSettings::default()).await);
    let (s, v) = call(&app, Method::PUT, "/plugins/foreign", foreign).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_plugin"), "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("acme:net/socket"),
        "{v}"
    );
    let (s, v) = call(&app, Method::GET, "/plugins", vec![]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["plugins"], json!([]), "refused uploads left something behind");
    // Within the caps, the same upload works.
    let (s, v) = call(&app, Method::PUT, "/plugins/up", upper).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn version_cap_prunes_the_oldest_unpinned_version_and_refuses_when_all_are_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let caps = PluginSettings {
        max_versions: 2,
        max_compiled: 1,
        ..PluginSettings::default()
    };
    let h = host(dir.path(), caps).await;
    let app = crate::http::router(h.clone());
    let upper = wasm::read(wasm::UPPER);
    for _ in 0..2 {
        let (s, v) = call(&app, Method::PUT, "/plugins/up", upper.clone()).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    // Pin version 1 with a paused pipeline.
    for stream in ["in", "out", "out2"] {
        let body = serde_json::to_vec(&json!({ "name": stream })).unwrap();
        let (s, v) = call(&app, Method::POST, "/streams", body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let pipe =
        json!({"name": "p", "input": "in", "output": "out", "plugin": "up", "plugin_version": 1, "paused": true});
    let (s, v) = call(&app, Method::POST, "/pipelines", serde_json::to_vec(&pipe).unwrap()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Version 3 pushes out version 2 (the oldest unpinned), not version 1.
    let (s, v) = call(&app, Method::PUT, "/plugins/up", upper.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(versions(&app, "up").await, vec![1, 3]);
    // Pin 3 too: now every version is pinned and the next upload is refused.
    let pipe =
        json!({"name": "q", "input": "in", "output": "out2", "plugin": "up", "plugin_version": 3, "paused": true});
    let (s, v) = call(&app, Method::POST, "/pipelines", serde_json::to_vec(&pipe).unwrap()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = call(&app, Method::PUT, "/plugins/up", upper.clone()).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "too_many_versions"), "{v}");
    assert_eq!(versions(&app, "up").await, vec![1, 3]);
    // max_compiled = 1: only one compiled version stays in memory, and an
    // evicted one is compiled again when used.
    assert!(h.registry_for_test().compiled_count() <= 1);
    h.registry_for_test().transform("up", Some(1)).unwrap();
    h.registry_for_test().transform("up", Some(3)).unwrap();
    assert_eq!(h.registry_for_test().compiled_count(), 1);
}

#[tokio::test]
async fn pipeline_cap_refuses_one_more() {
    let dir = tempfile::tempdir().unwrap();
    let caps = PluginSettings {
        max_pipelines: 1,
        ..PluginSettings::default()
    };
    let app = crate::http::router(host(dir.path(), caps).await);
    let (s, _) = call(&app, Method::PUT, "/plugins/up", wasm::read(wasm::UPPER)).await;
    assert_eq!(s, StatusCode::CREATED);
    for stream in ["in", "a-out", "b-out"] {
        let body = serde_json::to_vec(&json!({ "name": stream })).unwrap();
        let (s, v) = call(&app, Method::POST, "/streams", body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let pipe = |name: &str| {
        serde_json::to_vec(
            &json!({"name": name, "input": "in", "output": format!("{name}-out"), "plugin": "up", "paused": true}),
        )
        .unwrap()
    };
    let (s, v) = call(&app, Method::POST, "/pipelines", pipe("a")).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = call(&app, Method::POST, "/pipelines", pipe("b")).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "node_full"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("plugins.max_pipelines"),
        "{v}"
    );
}

#[tokio::test]
async fn an_upload_waiting_too_long_for_a_compile_slot_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let caps = PluginSettings {
        max_concurrent_compiles: 1,
        compile_wait: std::time::Duration::from_millis(100),
        ..PluginSettings::default()
    };
    let h = host(dir.path(), caps).await;
    let app = crate::http::router(h.clone());
    // Another upload holds the only slot.
    let held = h.hold_compile_slot().await;
    let (s, v) = call(&app, Method::PUT, "/plugins/up", wasm::read(wasm::UPPER)).await;
    assert_eq!((s, code(&v)), (StatusCode::SERVICE_UNAVAILABLE, "busy"), "{v}");
    drop(held);
    let (s, v) = call(&app, Method::PUT, "/plugins/up", wasm::read(wasm::UPPER)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn deleting_a_pipeline_whose_plugin_sleeps_in_wasi_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        plugin_call_timeout: std::time::Duration::from_millis(500),
        ..Settings::default()
    };
    let h = Host::open(settings).await.unwrap();
    let app = crate::http::router(h.clone());
    let (s, v) = call(&app, Method::PUT, "/plugins/sleeper", wasm::read(wasm::SLEEPER)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for stream in ["in", "out"] {
        let body = serde_json::to_vec(&json!({ "name": stream })).unwrap();
        let (s, v) = call(&app, Method::POST, "/streams", body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let body = serde_json::to_vec(&json!([{"value": "sleep"}])).unwrap();
    let (s, v) = call(&app, Method::POST, "/streams/in/partitions/0/records", body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let pipe = json!({"name": "p", "input": "in", "output": "out", "plugin": "sleeper"});
    let (s, v) = call(&app, Method::POST, "/pipelines", serde_json::to_vec(&pipe).unwrap()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Let the task reach the sleeping call, then delete and shut down.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let (s, v) = call(&app, Method::DELETE, "/pipelines/p", vec![]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    h.shutdown().await;
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(3), "stopping took {took:?}");
}
