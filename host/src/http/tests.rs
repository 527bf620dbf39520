//! HTTP API tests driven in-process with `tower::ServiceExt::oneshot`:
//! every bad input gets a 4xx JSON error with a stable code and changes
//! nothing; the token guards all but `/health`.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{Host, Settings};

async fn host(dir: &std::path::Path, token: Option<&str>) -> Host {
    let settings = Settings {
        data_dir: dir.to_path_buf(),
        auth_token: token.map(String::from),
        max_request_bytes: bytesize::ByteSize::kib(64),
        ..Settings::default()
    };
    Host::open(settings).await.unwrap()
}

async fn call(app: &Router, method: Method, uri: &str, body: &str, token: Option<&str>) -> (StatusCode, Value) {
    request(app, method, uri, Body::from(body.to_string()), token).await
}

/// One in-process request; the answer's status and JSON body (`Null` if empty).
pub(super) async fn request(
    app: &Router,
    method: Method,
    uri: &str,
    body: Body,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, v)
}

/// The error code of an error answer.
pub(super) fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[tokio::test]
async fn bad_inputs_get_json_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), None).await;
    let app = crate::http::router(h.clone());
    let (s, _) = call(&app, Method::POST, "/streams", r#"{"name":"s","partitions":2}"#, None).await;
    assert_eq!(s, StatusCode::CREATED);
    let recs = "/streams/s/partitions/0/records";
    let cases: Vec<(Method, String, String, StatusCode, &str)> = vec![
        (
            Method::POST,
            "/streams".into(),
            "{".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            "/streams".into(),
            r#"{"name":"s"}"#.into(),
            StatusCode::CONFLICT,
            "stream_exists",
        ),
        (
            Method::POST,
            "/streams".into(),
            r#"{"name":"a b"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            "/streams".into(),
            r#"{"name":"x","partitions":-1}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            recs.into(),
            "[{\"value\":".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            recs.into(),
            "[]".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            recs.into(),
            r#"[{"value":{"base64":"%%"}}]"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            recs.into(),
            r#"[{"value":"a","timestamp":-1}]"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            recs.into(),
            format!(r#"[{{"value":"{}"}}]"#, "x".repeat(70_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            Method::POST,
            "/streams/nope/partitions/0/records".into(),
            r#"[{"value":"a"}]"#.into(),
            StatusCode::NOT_FOUND,
            "stream_not_found",
        ),
        (
            Method::POST,
            "/streams/s/partitions/2/records".into(),
            r#"[{"value":"a"}]"#.into(),
            StatusCode::NOT_FOUND,
            "partition_not_found",
        ),
        (
            Method::POST,
            "/streams/s/partitions/x/records".into(),
            r#"[{"value":"a"}]"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("{recs}?offset=-1"),
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("{recs}?offset=18446744073709551615"),
            String::new(),
            StatusCode::BAD_REQUEST,
            "offset_out_of_range",
        ),
        (
            Method::GET,
            format!("{recs}?offset=18446744073709551616"),
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("{recs}?max_records=abc"),
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("{recs}?max_records=0"),
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            recs.into(),
            r#"[{"value":"v","timestamp":9223372036854775808}]"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("{recs}?headers=map"),
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            recs.into(),
            r#"[{"value":"v","headers":{"h":"1","h":"2"}}]"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            recs.into(),
            r#"[{"value":"v","headers":[{"name":"h"}]}]"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            format!("{recs}?encoding=rot13"),
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            "/streams/nope".into(),
            String::new(),
            StatusCode::NOT_FOUND,
            "stream_not_found",
        ),
        (
            Method::DELETE,
            "/streams/nope".into(),
            String::new(),
            StatusCode::NOT_FOUND,
            "stream_not_found",
        ),
        (
            Method::GET,
            "/nowhere".into(),
            String::new(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::PUT,
            "/streams".into(),
            String::new(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (method, uri, body, status, want) in cases {
        let (got, v) = call(&app, method.clone(), &uri, &body, None).await;
        assert_eq!((got, code(&v)), (status, want), "{method} {uri} body {:.60}: {v}", body);
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Nothing was appended by the failures; the server still works.
    let (s, v) = call(
        &app,
        Method::POST,
        recs,
        r#"{"records":[{"key":"k","value":{"base64":"AP8="},"headers":{"h":"v"},"timestamp":7}]}"#,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"base_offset": 0, "count": 1}));
    let (s, v) = call(&app, Method::GET, &format!("{recs}?offset=0"), "", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"records":[{"offset":0,"timestamp":7,"key":"k","value":{"base64":"AP8="},"headers":{"h":"v"}}],
               "next_offset":1,"start_offset":0,"end_offset":1})
    );
    let (_, v) = call(&app, Method::GET, &format!("{recs}?encoding=base64"), "", None).await;
    assert_eq!(v["records"][0]["key"], json!({"base64": "aw=="}));
    // Headers that repeat a name go in as a list and come back as one, in
    // order; `headers=list` gives the list form for every record.
    let repeated = json!([{"name": "h", "value": "1"}, {"name": "n", "value": null}, {"name": "h", "value": "2"}]);
    let body = json!([{"value": "v", "headers": repeated}]).to_string();
    let (s, v) = call(&app, Method::POST, recs, &body, None).await;
    assert_eq!((s, &v["base_offset"]), (StatusCode::OK, &json!(1)), "{v}");
    let (_, v) = call(&app, Method::GET, &format!("{recs}?offset=0"), "", None).await;
    assert_eq!(v["records"][0]["headers"], json!({"h": "v"}));
    assert_eq!(v["records"][1]["headers"], repeated);
    let (_, v) = call(&app, Method::GET, &format!("{recs}?offset=0&headers=list"), "", None).await;
    assert_eq!(v["records"][0]["headers"], json!([{"name": "h", "value": "v"}]));
    assert_eq!(v["records"][1]["headers"], repeated);
    h.shutdown().await;
}

#[tokio::test]
async fn stream_crud() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), None).await;
    let app = crate::http::router(h.clone());
    call(&app, Method::POST, "/streams", r#"{"name":"b","partitions":3}"#, None).await;
    call(&app, Method::POST, "/streams", r#"{"name":"a"}"#, None).await;
    let (_, v) = call(&app, Method::GET, "/streams", "", None).await;
    let names: Vec<&str> = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a", "b"]);
    let (_, v) = call(&app, Method::GET, "/streams/b", "", None).await;
    assert_eq!(v["partitions"].as_array().unwrap().len(), 3);
    let (s, _) = call(&app, Method::DELETE, "/streams/b", "", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&app, Method::GET, "/streams/b", "", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    h.shutdown().await;
}

#[tokio::test]
async fn token_guards_everything_but_health() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), Some("s3cret")).await;
    let app = crate::http::router(h.clone());
    assert_eq!(call(&app, Method::GET, "/health", "", None).await.0, StatusCode::OK);
    let (s, v) = call(&app, Method::GET, "/streams", "", None).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, _) = call(&app, Method::GET, "/streams", "", Some("wrong")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(&app, Method::POST, "/streams", r#"{"name":"x"}"#, Some("wrong")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&app, Method::GET, "/streams", "", Some("s3cret")).await.0,
        StatusCode::OK
    );
    assert!(h.list_streams().is_empty(), "an unauthorized request changed state");
    h.shutdown().await;
}

/// `/ready` is 200 on a working node, open without the token, and 503
/// `not_ready` with the reason once the node stops; `/health` stays 200.
#[tokio::test]
async fn ready_says_why_the_node_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), Some("secret")).await;
    let app = crate::http::router(h.clone());
    let (status, body) = call(&app, Method::GET, "/ready", "", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"ready": true, "problems": []})));
    h.begin_stopping();
    let (status, body) = call(&app, Method::GET, "/ready", "", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "not_ready", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("shutting down")),
        "{body}"
    );
    let (status, _) = call(&app, Method::GET, "/health", "", None).await;
    assert_eq!(status, StatusCode::OK);
    h.shutdown().await;
}

/// What a browser sends for another site is refused: a cross-origin
/// request (even with the right token), and without a token a `Host` that
/// is not a loopback name (DNS rebinding); same-origin and non-browser
/// requests pass.
#[tokio::test]
async fn cross_site_requests_and_foreign_hosts_are_refused() {
    let send = async |app: &Router, headers: &[(&str, &str)]| {
        let mut req = Request::builder().method(Method::GET).uri("/streams");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
    };
    let dir = tempfile::tempdir().unwrap();
    let open = crate::http::router(host(dir.path(), None).await);
    let local = [("host", "127.0.0.1:8080")];
    assert_eq!(send(&open, &local).await.0, StatusCode::OK);
    assert_eq!(send(&open, &[("host", "localhost:8080")]).await.0, StatusCode::OK);
    assert_eq!(send(&open, &[]).await.0, StatusCode::OK, "no Host: not a browser");
    let same = [("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")];
    assert_eq!(send(&open, &same).await.0, StatusCode::OK);
    let (s, v) = send(&open, &[("host", "127.0.0.1:8080"), ("origin", "https://evil.example")]).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "cross_origin"));
    let (s, v) = send(&open, &[("host", "127.0.0.1:8080"), ("origin", "null")]).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "cross_origin"));
    let (s, v) = send(&open, &[("host", "rebound.evil.example:8080")]).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "host_not_allowed"));

    // With a token, any Host is fine (the token guards), a foreign Origin is not.
    let dir = tempfile::tempdir().unwrap();
    let guarded = crate::http::router(host(dir.path(), Some("t")).await);
    let auth = ("authorization", "Bearer t");
    assert_eq!(
        send(&guarded, &[("host", "node.example:8080"), auth]).await.0,
        StatusCode::OK
    );
    let (s, v) = send(
        &guarded,
        &[("host", "node.example:8080"), ("origin", "https://evil.example"), auth],
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "cross_origin"));
}

/// A produce request with more records than `[http] max_records_per_request`
/// is refused whole (413 `too_many_records`) and writes nothing.
#[tokio::test]
async fn a_produce_over_the_record_cap_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: dir.path().to_path_buf(),
        ..Settings::default()
    };
    settings.http.max_records_per_request = 3;
    let h = Host::open(settings).await.unwrap();
    h.create_stream("t", 1).await.unwrap();
    let app = crate::http::router(h.clone());
    let uri = "/streams/t/partitions/0/records";
    let four = r#"[{"value":"a"},{"value":"b"},{"value":"c"},{"value":"d"}]"#;
    let (s, v) = call(&app, Method::POST, uri, four, None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_many_records"),
        "{v}"
    );
    assert_eq!(h.stream_end("t", 0).unwrap(), 0, "nothing written");
    let three = r#"[{"value":"a"},{"value":"b"},{"value":"c"}]"#;
    let (s, v) = call(&app, Method::POST, uri, three, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    h.shutdown().await;
}

#[tokio::test]
async fn json_bodies_must_be_declared_json() {
    let dir = tempfile::tempdir().unwrap();
    let app = crate::http::router(host(dir.path(), None).await);
    let send = |content_type: Option<&'static str>, body: &'static str| {
        let app = app.clone();
        async move {
            let mut req = Request::builder().method(Method::POST).uri("/streams");
            if let Some(t) = content_type {
                req = req.header("content-type", t);
            }
            let resp = app.oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
        }
    };
    // What a page on another site can send without asking first.
    for (t, body) in [
        (Some("text/plain"), r#"{"name":"a"}"#),
        (Some("application/x-www-form-urlencoded"), r#"{"name":"a"}"#),
        (Some("multipart/form-data; boundary=x"), r#"{"name":"a"}"#),
        (None, r#"{"name":"a"}"#),
    ] {
        let (s, v) = send(t, body).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            "{t:?}: {v}"
        );
    }
    let (s, v) = call(&app, Method::GET, "/streams", "", None).await;
    assert_eq!(
        (s, &v["streams"]),
        (StatusCode::OK, &json!([])),
        "a refused body created something"
    );
    let (s, v) = send(Some("application/json; charset=utf-8"), r#"{"name":"a"}"#).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = send(Some("application/vnd.sluice+json"), r#"{"name":"b"}"#).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // The document says so for every JSON body.
    let doc: Value = serde_json::from_str(crate::http::openapi::document().as_ref().unwrap()).unwrap();
    for (path, method) in [("/streams", "post"), ("/pipelines", "post"), ("/views", "post")] {
        assert!(
            doc["paths"][path][method]["responses"]["415"].is_object(),
            "{method} {path}"
        );
    }
    let upload = &doc["paths"]["/plugins/{name}"]["put"];
    assert!(upload["responses"]["415"].is_null());
    // The upload's body is required raw bytes under both media types, so
    // generators send bytes rather than JSON values.
    assert_eq!(upload["requestBody"]["required"], true);
    for media in ["application/wasm", "application/octet-stream"] {
        let schema = &upload["requestBody"]["content"][media]["schema"]["$ref"];
        assert_eq!(schema, "#/components/schemas/WasmBody", "{media}");
    }
    assert_eq!(doc["components"]["schemas"]["WasmBody"]["format"], "binary");
}
