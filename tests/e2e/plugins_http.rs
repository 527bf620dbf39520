//! Plugin lifecycle over real HTTP: upload, consume-time filtering, refused
//! uploads, a trapping plugin, `plugin_in_use`, and plugins surviving a
//! SIGKILL + restart.

use reqwest::StatusCode;
use serde_json::json;
use sluice_test_artifacts as wasm;

use crate::plugin_api::*;
use crate::support::{self, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_filter_and_plugin_lifecycle_over_http() {
    let mut server = Server::start().await;
    let client = support::client();
    assert!(plugin_names(&client, &server).await.is_empty());

    // Uploads: versions count per name.
    upload(&client, &server, "json-filter", wasm::JSON_FILTER, 1).await;
    upload(&client, &server, "upper", wasm::UPPER, 1).await;
    upload(&client, &server, "upper", wasm::UPPER, 2).await;
    upload(&client, &server, "panicker", wasm::PANICKER, 1).await;

    // Refused uploads store nothing.
    let resp = put_plugin(
        &client,
        &server,
        "garbage",
        b"\0asm but not really a component".to_vec(),
    )
    .await;
    support::expect_error(resp, StatusCode::BAD_REQUEST, "invalid_plugin").await;
    let mut truncated = wasm::read(wasm::UPPER);
    truncated.truncate(truncated.len() / 2);
    let resp = put_plugin(&client, &server, "garbage", truncated).await;
    support::expect_error(resp, StatusCode::BAD_REQUEST, "invalid_plugin").await;
    let resp = get(&client, &server, "/plugins/garbage").await;
    support::expect_error(resp, StatusCode::NOT_FOUND, "plugin_not_found").await;
    assert_eq!(
        plugin_names(&client, &server).await,
        ["json-filter", "panicker", "upper"]
    );

    // Consume-time filtering with json-filter.
    support::create_stream(&client, &server, "logs", 1).await;
    let logs = json!([
        {"key": "a", "value": r#"{"level":"error","msg":"disk full"}"#},
        {"value": r#"{"level":"info","msg":"ok"}"#},
        {"value": "not json at all"},
        {"value": r#"{"level":"error","msg":"oom"}"#, "headers": {"h": "1"}},
        {"value": r#"{"msg":"no level"}"#},
        {"value": r#"{"level":"ERROR"}"#},
        {"value": r#"{"level":["error"]}"#},
        {"key": "z", "value": r#"{"level":"error"}"#},
    ]);
    support::produce(&client, &server, "logs", 0, &logs).await;
    let errors = "plugin=json-filter&config.field=/level&config.value=error";
    let page = support::expect_json(consume(&client, &server, "logs", 0, errors).await, StatusCode::OK).await;
    assert_eq!(
        offsets_and_values(&page),
        [
            (0, r#"{"level":"error","msg":"disk full"}"#.to_string()),
            (3, r#"{"level":"error","msg":"oom"}"#.to_string()),
            (7, r#"{"level":"error"}"#.to_string()),
        ],
        "{page}"
    );
    assert_eq!(
        (page["next_offset"].as_u64(), page["end_offset"].as_u64()),
        (Some(8), Some(8)),
        "{page}"
    );
    assert_eq!(page["records"][0]["key"], "a", "{page}");
    assert_eq!(page["records"][1]["headers"], json!({"h": "1"}), "{page}");
    assert_eq!(page["records"][2]["key"], "z", "{page}");
    // The same through small pages.
    let paged = read_all_through(&client, &server, "logs", 0, errors).await;
    assert_eq!(paged, offsets_and_values(&page));
    // Another condition, and a config the plugin refuses.
    let page = support::expect_json(
        consume(
            &client,
            &server,
            "logs",
            0,
            "plugin=json-filter&config.field=/level&config.op=missing",
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(offsets_and_values(&page), [(4, r#"{"msg":"no level"}"#.to_string())]);
    let resp = consume(&client, &server, "logs", 0, "plugin=json-filter").await;
    support::expect_error(resp, StatusCode::BAD_REQUEST, "plugin_config_rejected").await;
    // Filtering stored nothing.
    let page = support::expect_json(consume(&client, &server, "logs", 0, "").await, StatusCode::OK).await;
    assert_eq!(values(&page).len(), 8);
    assert_eq!(values(&page)[2], "not json at all");

    // A trapping plugin fails the read with 422, and only that read.
    support::create_stream(&client, &server, "p", 1).await;
    produce_values(&client, &server, "p", &["ok", "panic", "after"]).await;
    for _ in 0..3 {
        let resp = consume(&client, &server, "p", 0, "plugin=panicker").await;
        support::expect_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "plugin_trapped").await;
    }
    let page = support::expect_json(
        consume(&client, &server, "p", 0, "plugin=panicker&max_records=1").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(offsets_and_values(&page), [(0, "ok".to_string())]);
    let page = support::expect_json(
        consume(&client, &server, "p", 0, "plugin=panicker&offset=2").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(offsets_and_values(&page), [(2, "after".to_string())]);
    let page = support::expect_json(consume(&client, &server, "p", 0, "").await, StatusCode::OK).await;
    assert_eq!(values(&page), ["ok", "panic", "after"]);
    let page = support::expect_json(consume(&client, &server, "p", 0, "plugin=upper").await, StatusCode::OK).await;
    assert_eq!(values(&page), ["OK", "PANIC", "AFTER"]);
    assert_eq!(produce_values(&client, &server, "p", &["later"]).await, [3]);
    let page = support::expect_json(consume(&client, &server, "logs", 0, errors).await, StatusCode::OK).await;
    assert_eq!(values(&page).len(), 3, "{page}");

    // A plugin a pipeline uses cannot be deleted; an unused one can.
    support::create_stream(&client, &server, "src", 1).await;
    support::create_stream(&client, &server, "dst", 1).await;
    create_pipeline(
        &client,
        &server,
        &json!({"name": "up", "input": "src", "output": "dst", "plugin": "upper"}),
    )
    .await;
    produce_values(&client, &server, "src", &["a", "drop", "b"]).await;
    wait_for_values(&client, &server, "dst", &["A", "B"]).await;
    let resp = delete(&client, &server, "/plugins/upper").await;
    support::expect_error(resp, StatusCode::CONFLICT, "plugin_in_use").await;
    let upper = support::expect_json(get(&client, &server, "/plugins/upper").await, StatusCode::OK).await;
    assert_eq!(upper["versions"].as_array().map(Vec::len), Some(2), "{upper}");
    let resp = delete(&client, &server, "/plugins/json-filter").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = get(&client, &server, "/plugins/json-filter").await;
    support::expect_error(resp, StatusCode::NOT_FOUND, "plugin_not_found").await;
    let resp = delete(&client, &server, "/plugins/json-filter").await;
    support::expect_error(resp, StatusCode::NOT_FOUND, "plugin_not_found").await;

    // Plugins (and the deletion) survive a SIGKILL.
    server.kill();
    server.restart().await;
    assert_eq!(plugin_names(&client, &server).await, ["panicker", "upper"]);
    let upper = support::expect_json(get(&client, &server, "/plugins/upper").await, StatusCode::OK).await;
    let versions: Vec<u64> = upper["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["version"].as_u64().expect("version"))
        .collect();
    assert_eq!(versions, [1, 2], "{upper}");
    assert!(
        upper["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .all(|v| v["kind"] == "transform" && v["size"] == wasm::read(wasm::UPPER).len() as u64),
        "{upper}"
    );
    let resp = consume(&client, &server, "logs", 0, errors).await;
    support::expect_error(resp, StatusCode::NOT_FOUND, "plugin_not_found").await;
    let page = support::expect_json(
        consume(&client, &server, "src", 0, "plugin=upper&plugin_version=1").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(values(&page), ["A", "B"]);
    let resp = consume(&client, &server, "p", 0, "plugin=panicker").await;
    support::expect_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "plugin_trapped").await;

    // The pipeline still runs after the restart and still pins its plugin.
    let status = pipeline_status(&client, &server, "up").await;
    assert_eq!(status["state"], "running", "{status}");
    let resp = delete(&client, &server, "/plugins/upper").await;
    support::expect_error(resp, StatusCode::CONFLICT, "plugin_in_use").await;
    produce_values(&client, &server, "src", &["c"]).await;
    wait_for_values(&client, &server, "dst", &["A", "B", "C"]).await;
    let resp = delete(&client, &server, "/pipelines/up").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = delete(&client, &server, "/plugins/upper").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(plugin_names(&client, &server).await, ["panicker"]);
}
