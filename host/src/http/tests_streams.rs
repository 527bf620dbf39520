//! Stream settings over HTTP: retention and compaction policies are checked
//! at creation (the plugin must be a compaction plugin that accepts the
//! config), shown by describe, and survive a restart.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_test_artifacts as wasm;

use super::tests::{code, request};
use crate::{Host, Settings};

async fn call(app: &Router, method: Method, uri: &str, body: Vec<u8>) -> (StatusCode, Value) {
    request(app, method, uri, Body::from(body), None).await
}

async fn create(app: &Router, body: Value) -> (StatusCode, Value) {
    call(app, Method::POST, "/streams", serde_json::to_vec(&body).unwrap()).await
}

#[tokio::test]
async fn compaction_settings_are_validated_shown_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        ..Settings::default()
    };
    let h = Host::open(settings.clone()).await.unwrap();
    let app = crate::http::router(h.clone());
    for (name, path) in [("keys", wasm::JSON_KEY), ("up", wasm::UPPER)] {
        let (s, v) = call(&app, Method::PUT, &format!("/plugins/{name}"), wasm::read(path)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let good = json!({
        "name": "users", "partitions": 2, "cleanup": "compact",
        "compaction": {"plugin": "keys", "config": {"pointer": "/id"}, "min_cleanable_dirty_ratio": 0.25},
    });
    let (s, v) = create(&app, good.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["cleanup"], "compact", "{v}");
    assert_eq!(v["compaction"]["plugin"], "keys", "{v}");
    assert_eq!(v["compaction"]["config"], json!({"pointer": "/id"}), "{v}");
    assert_eq!(v["compaction"]["min_cleanable_dirty_ratio"], 0.25, "{v}");
    assert_eq!(v["compaction"]["delete_retention_ms"], 86_400_000, "{v}");
    let (s, v) = create(&app, json!({"name": "plain"})).await;
    assert_eq!((s, v["cleanup"].as_str()), (StatusCode::CREATED, Some("delete")), "{v}");
    assert!(v.get("compaction").is_none(), "{v}");
    let (s, v) = create(
        &app,
        json!({"name": "both", "cleanup": "compact,delete", "retention_ms": 60000,
               "compaction": {"plugin": "keys", "plugin_version": 1, "config": {"pointer": ""}}}),
    )
    .await;
    assert_eq!(
        (s, v["cleanup"].as_str()),
        (StatusCode::CREATED, Some("compact,delete")),
        "{v}"
    );
    assert_eq!(v["retention_ms"], 60000, "{v}");

    let keys = |extra: Value| {
        let mut c = json!({"plugin": "keys", "config": {"pointer": "/id"}});
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        c
    };
    let bad = [
        (
            json!({"name": "b", "cleanup": "squash"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"name": "b", "cleanup": "compact"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"name": "b", "compaction": keys(json!({}))}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"name": "b", "cleanup": "compact", "retention_ms": 5, "compaction": keys(json!({}))}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"name": "b", "cleanup": "compact", "compaction": keys(json!({"min_cleanable_dirty_ratio": 1.5}))}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"name": "b", "cleanup": "compact", "compaction": keys(json!({"compaction_memory_bytes": 1000}))}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"name": "b", "cleanup": "compact", "compaction": {"plugin": "up"}}),
            StatusCode::BAD_REQUEST,
            "wrong_plugin_world",
        ),
        (
            json!({"name": "b", "cleanup": "compact", "compaction": {"plugin": "nope"}}),
            StatusCode::NOT_FOUND,
            "plugin_not_found",
        ),
        (
            json!({"name": "b", "cleanup": "compact", "compaction": {"plugin": "keys", "config": {"pointr": "/id"}}}),
            StatusCode::BAD_REQUEST,
            "plugin_config_rejected",
        ),
        (
            json!({"name": "b", "cleanup": "compact", "compaction": keys(json!({"bogus": 1}))}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (body, status, want) in bad {
        let (s, v) = create(&app, body.clone()).await;
        assert_eq!((s, code(&v)), (status, want), "{body}: {v}");
    }
    let (s, _) = call(&app, Method::GET, "/streams/b", vec![]).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a refused stream must not exist");

    // The settings are stream metadata: they survive a restart.
    let (_, before) = call(&app, Method::GET, "/streams/users", vec![]).await;
    h.shutdown().await;
    drop((h, app));
    let h = Host::open(settings).await.unwrap();
    let (s, after) = call(&crate::http::router(h.clone()), Method::GET, "/streams/users", vec![]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(after, before);
    h.shutdown().await;
}

#[tokio::test]
async fn compaction_memory_above_the_node_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let settings = crate::Settings {
        data_dir: dir.path().to_path_buf(),
        max_compaction_memory_bytes: bytesize::ByteSize::mib(32),
        ..crate::Settings::default()
    };
    let app = crate::http::router(crate::Host::open(settings).await.unwrap());
    let ask = |name: &str, bytes: u64| {
        serde_json::json!({"name": name, "cleanup": "compact",
            "compaction": {"plugin": "sluice:record-key", "compaction_memory_bytes": bytes}})
        .to_string()
    };
    let (s, v) = super::tests::request(
        &app,
        axum::http::Method::POST,
        "/streams",
        axum::body::Body::from(ask("big", 64 << 20)),
        None,
    )
    .await;
    assert_eq!(
        (s, super::tests::code(&v)),
        (axum::http::StatusCode::BAD_REQUEST, "invalid_request"),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_compaction_memory_bytes"),
        "{v}"
    );
    let (s, v) = super::tests::request(
        &app,
        axum::http::Method::POST,
        "/streams",
        axum::body::Body::from(ask("fits", 32 << 20)),
        None,
    )
    .await;
    assert_eq!(s, axum::http::StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn lists_come_in_pages_by_name() {
    use axum::http::{Method, StatusCode};
    let dir = tempfile::tempdir().unwrap();
    let settings = crate::Settings {
        data_dir: dir.path().to_path_buf(),
        ..crate::Settings::default()
    };
    let app = crate::http::router(crate::Host::open(settings).await.unwrap());
    let call = |method: Method, uri: String, body: String| {
        let app = app.clone();
        async move { super::tests::request(&app, method, &uri, axum::body::Body::from(body), None).await }
    };
    for name in ["e", "a", "d", "c", "b"] {
        let (s, v) = call(Method::POST, "/streams".into(), format!(r#"{{"name":"{name}"}}"#)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let mut seen = Vec::new();
    let mut uri = "/streams?limit=2".to_string();
    loop {
        let (s, v) = call(Method::GET, uri.clone(), String::new()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let names: Vec<String> = v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect();
        assert!(names.len() <= 2, "{v}");
        seen.extend(names);
        match v["next_after"].as_str() {
            Some(next) => uri = format!("/streams?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    for bad in [
        "/streams?limit=0",
        "/streams?limit=10001",
        "/plugins?limit=x",
        "/groups?page=2",
    ] {
        let (s, v) = call(Method::GET, bad.into(), String::new()).await;
        assert_eq!(
            (s, super::tests::code(&v)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{bad}: {v}"
        );
    }
    let (s, v) = call(Method::GET, "/views?limit=1".into(), String::new()).await;
    assert_eq!((s, &v), (StatusCode::OK, &serde_json::json!({"views": []})));
}

#[tokio::test]
async fn produce_bodies_wait_for_the_in_flight_budget_before_they_are_read() {
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::Settings {
        data_dir: dir.path().to_path_buf(),
        ..crate::Settings::default()
    };
    settings.max_in_flight_bytes = bytesize::ByteSize::mib(1);
    let host = crate::Host::open(settings).await.unwrap();
    host.create_stream("s", 1).await.unwrap();
    let app = crate::http::router(host);
    let produce = |body: axum::body::Body, len: usize| {
        Request::post("/streams/s/partitions/0/records")
            .header("content-type", "application/json")
            .header("content-length", len.to_string())
            .body(body)
            .unwrap()
    };
    // A 1 MiB body that arrives slowly holds the whole budget.
    let big = format!(r#"[{{"value":"{}"}}]"#, "x".repeat((1 << 20) - 14));
    assert_eq!(big.len(), 1 << 20);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let first = tokio::spawn(
        app.clone()
            .oneshot(produce(axum::body::Body::from_stream(stream), big.len())),
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let small = r#"[{"value":"small"}]"#;
    let mut second = tokio::spawn(app.clone().oneshot(produce(axum::body::Body::from(small), small.len())));
    let waited = tokio::time::timeout(std::time::Duration::from_millis(300), &mut second).await;
    assert!(waited.is_err(), "a produce past the in-flight budget did not wait");
    tx.send(Ok(bytes::Bytes::from(big))).await.unwrap();
    drop(tx);
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(second.await.unwrap().unwrap().status(), StatusCode::OK);
}
