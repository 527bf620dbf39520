//! Bad requests over real HTTP: each gets the documented status and a JSON
//! error body, and the server keeps serving afterwards. Also the bearer-token
//! guard and configuration through environment variables.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value, json};

use crate::support::{self, Server, ServerOptions, expect_error, expect_json};

const LIMIT: usize = 65536;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let server = Server::start_with(ServerOptions::args(&["--max-request-bytes", &LIMIT.to_string()])).await;
    let c = support::client();
    support::create_stream(&c, &server, "s", 2).await;
    let records = support::records_url(&server, "s", 0);

    // Malformed JSON bodies (sent raw, so they really are malformed).
    let streams = server.url("/streams");
    for (url, body) in [
        (&records, r#"[{"value": "#),
        (&records, "not json"),
        (&records, ""),
        (&records, r#"[{"key": "k"}]"#),
        (&records, r#"{"value": "a"}"#),
        (&records, r#"[{"value": 5}]"#),
        (&records, r#"[{"value": "a", "timestamp": -1}]"#),
        (&streams, r#"{"name": "#),
        (&streams, ""),
        (&streams, r#"{"partitions": 2}"#),
        (&streams, r#"{"name": "t", "partitions": "four"}"#),
    ] {
        let resp = c
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, answer) = support::json_of(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "POST {url} {body:?}: {answer}");
        assert_eq!(
            answer["error"]["code"], "invalid_request",
            "POST {url} {body:?}: {answer}"
        );
    }

    // Invalid base64 in value, key and header.
    for body in [
        json!([{"value": {"base64": "!!!"}}]),
        json!([{"key": {"base64": "%%%%"}, "value": "ok"}]),
        json!([{"value": "ok", "headers": {"h": {"base64": "not base64!"}}}]),
        json!({"records": [{"value": "ok"}, {"value": {"base64": "!!!"}}]}),
    ] {
        let resp = c.post(&records).json(&body).send().await.unwrap();
        expect_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    }

    // Unknown stream, unknown partition, partition not a number.
    let resp = c.get(server.url("/streams/nope")).send().await.unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "stream_not_found").await;
    let resp = c.delete(server.url("/streams/nope")).send().await.unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "stream_not_found").await;
    let resp = c
        .post(support::records_url(&server, "nope", 0))
        .json(&json!([{"value": "x"}]))
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "stream_not_found").await;
    let resp = c.get(support::records_url(&server, "nope", 0)).send().await.unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "stream_not_found").await;
    let resp = c
        .post(support::records_url(&server, "s", 2))
        .json(&json!([{"value": "x"}]))
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "partition_not_found").await;
    let resp = c.get(support::records_url(&server, "s", 9)).send().await.unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "partition_not_found").await;
    for p in ["x", "-1", "1.5", "99999999999999999999"] {
        let url = server.url(&format!("/streams/s/partitions/{p}/records"));
        let resp = c.get(&url).send().await.unwrap();
        expect_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
        let resp = c.post(&url).json(&json!([{"value": "x"}])).send().await.unwrap();
        expect_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    }

    // Unknown route.
    let resp = c.get(server.url("/nope")).send().await.unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = c.get(server.url("/streams/s/partitions")).send().await.unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;

    // A body over --max-request-bytes is refused with 413 (and JSON); one just
    // under it is accepted.
    let big = json!([{"value": "x".repeat(100 * 1024)}]);
    let resp = c
        .post(&records)
        .json(&big)
        .send()
        .await
        .expect("send an oversized body");
    expect_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let fits = json!([{"value": "y".repeat(LIMIT - 1024)}]);
    assert_eq!(support::produce(&c, &server, "s", 1, &fits).await, vec![0]);

    // Bad query values.
    for (query, code) in [
        ("offset=-1", "invalid_request"),
        ("offset=abc", "invalid_request"),
        ("offset=1.5", "invalid_request"),
        ("offset=18446744073709551616", "invalid_request"),
        ("max_records=abc", "invalid_request"),
        ("max_records=-5", "invalid_request"),
        ("max_bytes=lots", "invalid_request"),
        ("encoding=rot13", "invalid_request"),
        ("offset=18446744073709551615", "offset_out_of_range"),
        ("offset=1", "offset_out_of_range"),
    ] {
        let resp = c.get(format!("{records}?{query}")).send().await.unwrap();
        let body = expect_error(resp, StatusCode::BAD_REQUEST, code).await;
        assert!(body["error"]["message"].is_string(), "{query}: {body}");
    }
    // Partition 1 holds one record: offset 1 is the end (empty), 2 is beyond.
    let p1 = support::records_url(&server, "s", 1);
    let page = expect_json(c.get(format!("{p1}?offset=1")).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(page["records"], json!([]), "{page}");
    assert_eq!(
        (page["next_offset"].as_u64(), page["end_offset"].as_u64()),
        (Some(1), Some(1)),
        "{page}"
    );
    let resp = c.get(format!("{p1}?offset=2")).send().await.unwrap();
    expect_error(resp, StatusCode::BAD_REQUEST, "offset_out_of_range").await;

    // Stream names and duplicates.
    let resp = c
        .post(server.url("/streams"))
        .json(&json!({"name": "s", "partitions": 2}))
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::CONFLICT, "stream_exists").await;
    let resp = c
        .post(server.url("/streams"))
        .json(&json!({"name": "s", "partitions": 5}))
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::CONFLICT, "stream_exists").await;
    let too_long = "n".repeat(129);
    for name in ["a b", "..", ".", "", "a/b", "../etc", "é", too_long.as_str()] {
        let resp = c
            .post(server.url("/streams"))
            .json(&json!({"name": name, "partitions": 1}))
            .send()
            .await
            .unwrap();
        expect_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    }

    // After all that the server still works, byte for byte.
    round_trip(&c, &server).await;
    // And nothing the bad requests sent was written.
    let page = expect_json(
        c.get(format!("{records}?offset=0")).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(0), "{page}");
    let list = expect_json(c.get(server.url("/streams")).send().await.unwrap(), StatusCode::OK).await;
    let mut names: Vec<&str> = list["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["bin", "s"], "{list}");
}

/// Produces text and binary records (key, value, headers, timestamp) and reads
/// them back in both encodings.
async fn round_trip(c: &reqwest::Client, server: &Server) {
    support::create_stream(c, server, "bin", 1).await;
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let invalid_utf8 = vec![0xff, 0xfe, 0x00, 0x80];
    let b64 = |b: &[u8]| json!({"base64": STANDARD.encode(b)});
    let records = json!({"records": [
        {"key": b64(&invalid_utf8), "value": b64(&all_bytes), "timestamp": 1_700_000_000_123u64,
         "headers": {"text": "héllo ✓", "bin": b64(&invalid_utf8), "empty": ""}},
        {"value": "plain text", "timestamp": 42},
        {"key": "", "value": b64(b"")},
        {"value": "\u{0}nul and \"quotes\"\n"},
    ]});
    assert_eq!(support::produce(c, server, "bin", 0, &records).await, vec![0, 1, 2, 3]);

    let url = support::records_url(server, "bin", 0);
    let page = expect_json(c.get(format!("{url}?offset=0")).send().await.unwrap(), StatusCode::OK).await;
    let r = page["records"].as_array().unwrap();
    assert_eq!(r.len(), 4, "{page}");
    assert_eq!(
        (page["next_offset"].as_u64(), page["end_offset"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(page["start_offset"], 0);
    // Default encoding: text when UTF-8, base64 object otherwise.
    assert_eq!(r[0]["offset"], 0);
    assert_eq!(r[0]["timestamp"], 1_700_000_000_123u64);
    assert_eq!(r[0]["key"], b64(&invalid_utf8));
    assert_eq!(r[0]["value"], b64(&all_bytes));
    assert_eq!(
        r[0]["headers"],
        json!({"text": "héllo ✓", "bin": b64(&invalid_utf8), "empty": ""})
    );
    assert_eq!(r[1]["offset"], 1);
    assert_eq!(r[1]["timestamp"], 42);
    assert_eq!(r[1]["key"], Value::Null);
    assert_eq!(r[1]["value"], "plain text");
    assert_eq!(r[1]["headers"], json!({}));
    assert_eq!(r[2]["key"], "");
    assert_eq!(r[2]["value"], "");
    assert!(
        r[2]["timestamp"].as_u64().is_some_and(|t| t > 1_600_000_000_000),
        "server clock: {}",
        r[2]
    );
    assert_eq!(r[3]["value"], "\u{0}nul and \"quotes\"\n");

    // encoding=base64: every byte field is an object; decode and compare.
    let page = expect_json(
        c.get(format!("{url}?offset=0&encoding=base64")).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    let r = page["records"].as_array().unwrap();
    let decode = |v: &Value| -> Vec<u8> {
        let s = v["base64"]
            .as_str()
            .unwrap_or_else(|| panic!("not a base64 object: {v}"));
        STANDARD.decode(s).expect("server sent valid base64")
    };
    assert_eq!(decode(&r[0]["key"]), invalid_utf8);
    assert_eq!(decode(&r[0]["value"]), all_bytes);
    assert_eq!(decode(&r[0]["headers"]["text"]), "héllo ✓".as_bytes());
    assert_eq!(decode(&r[0]["headers"]["bin"]), invalid_utf8);
    assert_eq!(decode(&r[0]["headers"]["empty"]), b"");
    assert_eq!(r[1]["key"], Value::Null);
    assert_eq!(decode(&r[1]["value"]), b"plain text");
    assert_eq!(decode(&r[2]["key"]), b"");
    assert_eq!(decode(&r[3]["value"]), "\u{0}nul and \"quotes\"\n".as_bytes());

    // Paging: one record at a time, from the middle.
    let page = expect_json(
        c.get(format!("{url}?offset=1&max_records=1")).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["records"][0]["value"], "plain text");
    assert_eq!(page["next_offset"], 2);
    // max_bytes smaller than one record still makes progress (at least one record).
    let page = expect_json(
        c.get(format!("{url}?offset=0&max_bytes=1")).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(1), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_lifecycle() {
    let server = Server::start().await;
    let c = support::client();
    let list = expect_json(c.get(server.url("/streams")).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(list, json!({"streams": []}));

    let created = support::create_stream(&c, &server, "orders", 4).await;
    let b = support::create_stream(&c, &server, "b.events_2-x", 1).await;
    assert_ne!(created["id"], b["id"], "stream ids must differ");
    let got = expect_json(
        c.get(server.url("/streams/orders")).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(got, created);
    // Default partition count is 1.
    let resp = c
        .post(server.url("/streams"))
        .json(&json!({"name": "one"}))
        .send()
        .await
        .unwrap();
    let one = expect_json(resp, StatusCode::CREATED).await;
    assert_eq!(one["partitions"].as_array().map(Vec::len), Some(1), "{one}");

    support::produce(&c, &server, "orders", 3, &json!([{"value": "a"}, {"value": "b"}])).await;
    let got = expect_json(
        c.get(server.url("/streams/orders")).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        got["partitions"][3],
        json!({"partition": 3, "start_offset": 0, "end_offset": 2})
    );
    assert_eq!(
        got["partitions"][0],
        json!({"partition": 0, "start_offset": 0, "end_offset": 0})
    );

    let list = expect_json(c.get(server.url("/streams")).send().await.unwrap(), StatusCode::OK).await;
    let mut names: Vec<&str> = list["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["b.events_2-x", "one", "orders"]);

    let resp = c.delete(server.url("/streams/orders")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = c.get(server.url("/streams/orders")).send().await.unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "stream_not_found").await;
    let resp = c.get(support::records_url(&server, "orders", 3)).send().await.unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "stream_not_found").await;
    let resp = c.delete(server.url("/streams/orders")).send().await.unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "stream_not_found").await;

    // The name can be used again, and the new stream starts empty.
    support::create_stream(&c, &server, "orders", 2).await;
    let page = expect_json(
        c.get(support::records_url(&server, "orders", 0)).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["records"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_token_guards_everything_but_health() {
    let server = Server::start_with(ServerOptions::args(&["--auth-token", "secret"])).await;
    check_auth(&server, "secret").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_from_environment_variables() {
    let server = Server::start_with(ServerOptions {
        envs: vec![("SLUICE_AUTH_TOKEN".into(), "env-token".into())],
        config_from_env: true,
        ..ServerOptions::default()
    })
    .await;
    check_auth(&server, "env-token").await;
    // SLUICE_DATA_DIR was honoured: the server wrote into the test's data dir.
    let entries = std::fs::read_dir(server.data_dir()).map(|d| d.count()).unwrap_or(0);
    assert!(entries > 0, "nothing in {}", server.data_dir().display());
}

async fn check_auth(server: &Server, token: &str) {
    let c = support::client();
    let health = expect_json(c.get(server.url("/health")).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(health, json!({"status": "ok"}));

    let resp = c.get(server.url("/streams")).send().await.unwrap();
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    for bad in [
        "Bearer wrong",
        &format!("Bearer {token}x"),
        "Bearer ",
        token,
        &format!("Basic {token}"),
    ] {
        let resp = c
            .get(server.url("/streams"))
            .header(AUTHORIZATION, bad)
            .send()
            .await
            .unwrap();
        expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let resp = c
        .post(server.url("/streams"))
        .json(&json!({"name": "x", "partitions": 1}))
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let resp = c
        .get(server.url("/streams/x/partitions/0/records"))
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // Unknown routes do not reveal anything without a token either.
    let resp = c.get(server.url("/nope")).send().await.unwrap();
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let bearer = format!("Bearer {token}");
    let list = expect_json(
        c.get(server.url("/streams"))
            .header(AUTHORIZATION, &bearer)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list, json!({"streams": []}));
    let resp = c
        .post(server.url("/streams"))
        .header(AUTHORIZATION, &bearer)
        .json(&json!({"name": "x", "partitions": 1}))
        .send()
        .await
        .unwrap();
    expect_json(resp, StatusCode::CREATED).await;
    let url = support::records_url(server, "x", 0);
    let resp = c
        .post(&url)
        .header(AUTHORIZATION, &bearer)
        .json(&json!([{"value": "v"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(resp, StatusCode::OK).await,
        json!({"base_offset": 0, "count": 1})
    );
    // A rejected produce wrote nothing.
    let resp = c.post(&url).json(&json!([{"value": "sneaky"}])).send().await.unwrap();
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let page = expect_json(
        c.get(&url).header(AUTHORIZATION, &bearer).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["records"][0]["value"], "v");
}
