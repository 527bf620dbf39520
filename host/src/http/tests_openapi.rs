//! `/openapi.json` against the router that serves it: every route and
//! method the router serves is documented, every documented one is served,
//! every `$ref` resolves, and the documented schemas match what the
//! endpoints really answer.
//!
//! The served paths come from the router itself: axum has no public route
//! list, but `Router`'s `Debug` output names every registered path (in its
//! path router's `paths` map). The methods a path serves are found by
//! asking the router (anything but `405 method_not_allowed`), so nothing
//! here is a hand-written route list that could drift.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::tests::{code, request};
use crate::{Host, Settings};

async fn host(dir: &std::path::Path, token: Option<&str>) -> Host {
    let settings = Settings {
        data_dir: dir.to_path_buf(),
        auth_token: token.map(String::from),
        ..Settings::default()
    };
    Host::open(settings).await.unwrap()
}

async fn fetch_doc(app: &Router) -> Value {
    let (s, doc) = request(app, Method::GET, "/openapi.json", Body::empty(), None).await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3."),
        "{}",
        doc["openapi"]
    );
    doc
}

/// The paths registered in the router's path router, read from its `Debug`
/// output (`... node: Node { paths: {RouteId(0): "/health", ...} } ...`).
fn served_paths(app: &Router) -> BTreeSet<String> {
    let dbg = format!("{app:?}");
    let start = dbg.find("path_router:").expect("Router's Debug names its path_router");
    let end = dbg
        .find("fallback_router:")
        .expect("Router's Debug names its fallback_router");
    let section = &dbg[start..end];
    let paths: BTreeSet<String> = section
        .split("RouteId(")
        .skip(1)
        .filter_map(|s| s.split_once("): \"").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once('"').map(|(path, _)| path.to_string()))
        .filter(|p| !p.contains("__private__axum"))
        .collect();
    assert!(
        paths.contains("/health"),
        "no paths found in the router's Debug output: {section:.2000}"
    );
    paths
}

/// A concrete URI for a templated path.
fn concrete(path: &str) -> String {
    path.replace("{name}", "no-such-thing").replace("{partition}", "0")
}

/// One request; its status and body as JSON (`Null` when not JSON, as for
/// `/metrics`).
async fn probe(app: &Router, method: Method, uri: &str) -> (StatusCode, Value) {
    let req = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Methods probed (HEAD is left out: axum answers it wherever GET is served).
const METHODS: [Method; 7] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::TRACE,
];

/// The methods the router serves on `path`: those not answered with its
/// method-not-allowed fallback. Each answer must also not be the
/// route-not-found fallback, since the path is registered.
async fn served_methods(app: &Router, path: &str) -> BTreeSet<String> {
    let mut served = BTreeSet::new();
    for m in METHODS {
        let (s, v) = probe(app, m.clone(), &concrete(path)).await;
        assert!(
            !(s == StatusCode::NOT_FOUND && code(&v) == "not_found"),
            "{m} {path} reached the route-not-found fallback: {v}"
        );
        if s == StatusCode::METHOD_NOT_ALLOWED {
            assert_eq!(code(&v), "method_not_allowed", "{m} {path}: {v}");
        } else {
            served.insert(m.as_str().to_lowercase());
        }
    }
    served
}

fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let ops = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
    doc["paths"]
        .as_object()
        .expect("paths is an object")
        .iter()
        .map(|(p, item)| {
            let methods = item
                .as_object()
                .expect("path item is an object")
                .keys()
                .filter(|k| ops.contains(&k.as_str()))
                .cloned()
                .collect();
            (p.clone(), methods)
        })
        .collect()
}

#[tokio::test]
async fn every_served_route_and_method_is_documented_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), None).await;
    let app = crate::http::router(h.clone());
    let doc = fetch_doc(&app).await;
    let documented = documented(&doc);
    let served = served_paths(&app);

    let doc_paths: BTreeSet<String> = documented.keys().cloned().collect();
    let undocumented: Vec<_> = served.difference(&doc_paths).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in /openapi.json: {undocumented:?}"
    );
    let phantom: Vec<_> = doc_paths.difference(&served).collect();
    assert!(phantom.is_empty(), "in /openapi.json but not served: {phantom:?}");

    for (path, methods) in &documented {
        assert!(!methods.is_empty(), "{path} documents no operation");
        let served = served_methods(&app, path).await;
        assert_eq!(&served, methods, "{path}: methods served vs documented");
    }
    // The routes the brief lists, as a floor (the checks above are exact).
    for p in [
        "/health",
        "/metrics",
        "/openapi.json",
        "/streams/{name}/partitions/{partition}/records",
        "/plugins/{name}",
        "/pipelines/{name}/resume",
        "/streams/{name}/compaction",
    ] {
        assert!(documented.contains_key(p), "{p} missing");
    }
}

fn walk_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|v| walk_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| walk_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn refs_resolve_and_operations_are_complete() {
    let dir = tempfile::tempdir().unwrap();
    let app = crate::http::router(host(dir.path(), None).await);
    let doc = fetch_doc(&app).await;
    assert_eq!(doc["info"]["title"], "Sluice");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");

    // A record's value is required and may be null (a tombstone).
    let record_in = &doc["components"]["schemas"]["RecordIn"];
    assert!(
        record_in["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("value"))),
        "{record_in}"
    );
    assert!(
        record_in["properties"]["value"].to_string().contains("null"),
        "{record_in}"
    );

    // Headers come as an object or as a list of {name, value} (which may
    // repeat a name); reads give the same shape.
    let headers = &doc["components"]["schemas"]["Headers"];
    let forms: Vec<&Value> = headers["oneOf"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    assert_eq!(forms.len(), 2, "{headers}");
    assert_eq!(forms[0]["type"], "object", "{headers}");
    assert_eq!(
        forms[1]["items"]["$ref"], "#/components/schemas/HeaderEntry",
        "{headers}"
    );
    assert_eq!(
        doc["components"]["schemas"]["HeaderEntry"]["required"],
        json!(["name", "value"])
    );
    for shape in ["RecordIn", "RecordOut"] {
        let h = doc["components"]["schemas"][shape]["properties"]["headers"].to_string();
        assert!(h.contains("#/components/schemas/Headers"), "{shape}: {h}");
    }

    let mut refs = Vec::new();
    walk_refs(&doc, &mut refs);
    assert!(refs.len() > 20, "suspiciously few $refs: {}", refs.len());
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("non-local $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "$ref {r} does not resolve");
    }

    let error_ref = json!({"$ref": "#/components/schemas/ErrorBody"});
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let ok: Vec<_> = responses.keys().filter(|s| s.starts_with('2')).collect();
            assert_eq!(ok.len(), 1, "{method} {path}: one success status, got {ok:?}");
            for (status, resp) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        resp["content"]["application/json"]["schema"], error_ref,
                        "{method} {path} {status}: error schema"
                    );
                }
            }
            // Open operations say so (`security: [{}]`); all others can be
            // refused for want of the token.
            let open = op["security"] == json!([{}]);
            assert_eq!(
                open,
                ["/health", "/ready", "/openapi.json"].contains(&path.as_str()),
                "{method} {path}"
            );
            assert_eq!(responses.contains_key("401"), !open, "{method} {path}: 401 documented");
        }
    }
}

#[tokio::test]
async fn the_document_is_open_when_a_token_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let app = crate::http::router(host(dir.path(), Some("s3cret")).await);
    let (s, doc) = request(&app, Method::GET, "/openapi.json", Body::empty(), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["info"]["title"], "Sluice");
    let (s, v) = request(&app, Method::GET, "/streams", Body::empty(), None).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
}

/// Checks `v` against `schema` (the subset of JSON Schema the document
/// uses). Objects are strict: a field the code sends but the document does
/// not name is an error, so the schemas cannot silently fall behind.
fn check(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let target = r.strip_prefix('#').and_then(|p| doc.pointer(p));
        return check(doc, target.ok_or(format!("{at}: unresolved {r}"))?, v, at);
    }
    if let Some(alts) = schema["oneOf"].as_array() {
        let errs: Vec<String> = alts.iter().filter_map(|s| check(doc, s, v, at).err()).collect();
        return match errs.len() < alts.len() {
            true => Ok(()),
            false => Err(format!("{at}: matches no oneOf branch: {errs:?}")),
        };
    }
    if let Some(types) = types_of(schema) {
        let matches = |t: &str| match t {
            "null" => v.is_null(),
            "boolean" => v.is_boolean(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            "string" => v.is_string(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            _ => false,
        };
        if !types.iter().any(|t| matches(t)) {
            return Err(format!("{at}: {v} is not {types:?}"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        return Err(format!("{at}: {v} not in {allowed:?}"));
    }
    if let Some(items) = v.as_array() {
        let prefix = schema["prefixItems"].as_array();
        for (i, item) in items.iter().enumerate() {
            let s = match prefix.and_then(|p| p.get(i)) {
                Some(s) => s,
                None if schema["items"] == json!(false) => return Err(format!("{at}: extra tuple item")),
                None => &schema["items"],
            };
            check(doc, s, item, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(obj) = v.as_object() {
        let (props, required, extra) = object_parts(doc, schema);
        for r in &required {
            if !obj.contains_key(r) {
                return Err(format!("{at}: required `{r}` missing"));
            }
        }
        for (k, fv) in obj {
            let at = format!("{at}.{k}");
            match (props.get(k), &extra) {
                (Some(s), _) => check(doc, s, fv, &at)?,
                (None, Some(s)) => check(doc, s, fv, &at)?,
                (None, None) => return Err(format!("{at}: field not in the document")),
            }
        }
    }
    Ok(())
}

fn types_of(schema: &Value) -> Option<Vec<String>> {
    match &schema["type"] {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => Some(ts.iter().filter_map(|t| t.as_str().map(String::from)).collect()),
        _ => None,
    }
}

/// Properties, required names and the `additionalProperties` schema of an
/// object schema, merged over `allOf` (how `#[serde(flatten)]` shows).
fn object_parts(doc: &Value, schema: &Value) -> (BTreeMap<String, Value>, Vec<String>, Option<Value>) {
    let schema = match schema["$ref"].as_str().and_then(|r| doc.pointer(&r[1..])) {
        Some(s) => s,
        None => schema,
    };
    let mut props: BTreeMap<String, Value> = schema["properties"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut required: Vec<String> = schema["required"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let mut extra = schema.get("additionalProperties").filter(|a| a.is_object()).cloned();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (p, r, e) = object_parts(doc, part);
        props.extend(p);
        required.extend(r);
        extra = extra.or(e);
    }
    (props, required, extra)
}

/// Sends a request and checks the answer against the document: its status
/// must be documented for the operation and its body match that schema.
async fn expect(app: &Router, doc: &Value, method: Method, path: &str, uri: &str, body: Body) -> (StatusCode, Value) {
    let (s, v) = request(app, method.clone(), uri, body, None).await;
    let m = method.as_str().to_lowercase();
    let resp = &doc["paths"][path][&m]["responses"][s.as_str()];
    assert!(
        resp.is_object(),
        "{method} {uri} answered {s}, not documented for {path}: {v}"
    );
    match &resp["content"]["application/json"]["schema"] {
        Value::Null => assert!(v.is_null(), "{method} {uri}: undocumented body {v}"),
        schema => {
            if let Err(e) = check(doc, schema, &v, "$") {
                panic!("{method} {uri} ({s}): {e}\nbody: {v}");
            }
        }
    }
    (s, v)
}

#[tokio::test]
async fn answers_match_the_documented_schemas() {
    use sluice_test_artifacts as wasm;
    let dir = tempfile::tempdir().unwrap();
    let app = crate::http::router(host(dir.path(), None).await);
    let doc = fetch_doc(&app).await;
    let j = |v: Value| Body::from(v.to_string());
    let e = || Body::empty();
    let recs = "/streams/{name}/partitions/{partition}/records";
    let (put, post, get, del) = (Method::PUT, Method::POST, Method::GET, Method::DELETE);

    expect(&app, &doc, get.clone(), "/health", "/health", e()).await;
    let (s, _) = expect(
        &app,
        &doc,
        put.clone(),
        "/plugins/{name}",
        "/plugins/up",
        Body::from(wasm::read(wasm::UPPER)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let keys = Body::from(wasm::read(wasm::JSON_KEY));
    expect(&app, &doc, put.clone(), "/plugins/{name}", "/plugins/keys", keys).await;
    expect(&app, &doc, get.clone(), "/plugins", "/plugins", e()).await;
    expect(&app, &doc, get.clone(), "/plugins/{name}", "/plugins/up", e()).await;
    let stream = json!({"name": "s", "partitions": 2, "retention_ms": 60000});
    let (s, _) = expect(&app, &doc, post.clone(), "/streams", "/streams", j(stream)).await;
    assert_eq!(s, StatusCode::CREATED);
    let compacted = json!({"name": "c", "cleanup": "compact,delete",
        "compaction": {"plugin": "keys", "config": {"pointer": "/id"}}});
    expect(&app, &doc, post.clone(), "/streams", "/streams", j(compacted)).await;
    expect(
        &app,
        &doc,
        post.clone(),
        "/streams",
        "/streams",
        j(json!({"name": "out"})),
    )
    .await;
    let (s, _) = expect(
        &app,
        &doc,
        post.clone(),
        "/streams",
        "/streams",
        j(json!({"name": "s"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let batch = json!({"records": [{"key": "k", "value": "{\"id\":1}", "headers": {"h": {"base64": "AP8="}}},
        {"value": {"base64": "AP8="}, "timestamp": 5}]});
    let (s, _) = expect(
        &app,
        &doc,
        post.clone(),
        recs,
        "/streams/s/partitions/0/records",
        j(batch),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = expect(
        &app,
        &doc,
        get.clone(),
        recs,
        "/streams/s/partitions/0/records?encoding=base64",
        e(),
    )
    .await;
    assert_eq!((s, v["records"].as_array().map(Vec::len)), (StatusCode::OK, Some(2)));
    let filtered = "/streams/s/partitions/0/records?plugin=up&max_records=1";
    expect(&app, &doc, get.clone(), recs, filtered, e()).await;
    expect(&app, &doc, get.clone(), recs, "/streams/nope/partitions/0/records", e()).await;
    for (path, uri) in [
        ("/streams", "/streams"),
        ("/streams/{name}", "/streams/c"),
        ("/streams/{name}", "/streams/s"),
        ("/streams/{name}/status", "/streams/s/status"),
        ("/streams/{name}/compaction", "/streams/c/compaction"),
    ] {
        expect(&app, &doc, get.clone(), path, uri, e()).await;
    }
    expect(
        &app,
        &doc,
        post.clone(),
        "/streams/{name}/compact",
        "/streams/c/compact",
        e(),
    )
    .await;
    let (s, _) = expect(
        &app,
        &doc,
        post.clone(),
        "/streams/{name}/compact",
        "/streams/s/compact",
        e(),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);

    let pipe = json!({"name": "p", "input": "s", "output": "out", "plugin": "up", "config": {"a": "b"}});
    let (s, _) = expect(&app, &doc, post.clone(), "/pipelines", "/pipelines", j(pipe)).await;
    assert_eq!(s, StatusCode::CREATED);
    expect(&app, &doc, get.clone(), "/pipelines", "/pipelines", e()).await;
    expect(&app, &doc, get.clone(), "/pipelines/{name}", "/pipelines/p", e()).await;
    expect(
        &app,
        &doc,
        post.clone(),
        "/pipelines/{name}/pause",
        "/pipelines/p/pause",
        e(),
    )
    .await;
    expect(
        &app,
        &doc,
        post.clone(),
        "/pipelines/{name}/resume",
        "/pipelines/p/resume",
        e(),
    )
    .await;
    let (s, _) = expect(&app, &doc, del.clone(), "/plugins/{name}", "/plugins/up", e()).await;
    assert_eq!(s, StatusCode::CONFLICT);
    expect(&app, &doc, del.clone(), "/pipelines/{name}", "/pipelines/p", e()).await;
    expect(&app, &doc, del.clone(), "/plugins/{name}", "/plugins/up", e()).await;
    expect(&app, &doc, del.clone(), "/streams/{name}", "/streams/s", e()).await;
    expect(&app, &doc, del.clone(), "/streams/{name}", "/streams/s", e()).await;
}

/// The plugin registry's types are mirrored for the document (the API layer
/// does not own them): the mirrors must name exactly the fields and values
/// the real types serialize.
#[tokio::test]
async fn plugin_mirrors_match_the_registry_types() {
    use crate::plugin::{PluginInfo, PluginKind, VersionInfo};
    let dir = tempfile::tempdir().unwrap();
    let doc = fetch_doc(&crate::http::router(host(dir.path(), None).await)).await;
    let info = PluginInfo {
        name: "p".into(),
        versions: [PluginKind::Transform, PluginKind::Compaction]
            .into_iter()
            .map(|kind| VersionInfo {
                version: 1,
                kind,
                size: 2,
                uploaded_ms: 3,
            })
            .collect(),
    };
    let v = serde_json::to_value(&info).unwrap();
    check(&doc, &json!({"$ref": "#/components/schemas/PluginInfo"}), &v, "$").unwrap();
    for schema in ["PluginInfo", "VersionInfo"] {
        let (props, required, _) = object_parts(&doc, &doc["components"]["schemas"][schema]);
        let sample = if schema == "PluginInfo" { &v } else { &v["versions"][0] };
        let fields: BTreeSet<&String> = sample.as_object().unwrap().keys().collect();
        assert_eq!(fields, props.keys().collect(), "{schema}: fields");
        assert_eq!(required.len(), props.len(), "{schema}: every field is always sent");
    }
}
