//! Null values (Kafka tombstones) and null header values with clients
//! nobody here wrote: produced by confluent-kafka, kafka-python and over
//! HTTP, they read back null — never empty — through every client and
//! face, from the fetch cache and, after a kill -9 and a restart, converted
//! from the stored records. Empty values read back empty.

use serde_json::{Value, json};

use crate::kafka_support::{hex, kcat, py};
use crate::support::{self, Server};

/// (key, value) of every record in offset order; `None` is a null value.
fn expected() -> Vec<(Option<String>, Option<String>)> {
    let kv = |k: Option<&str>, v: Option<&str>| (k.map(|k| hex(k.as_bytes())), v.map(|v| hex(v.as_bytes())));
    vec![
        // confluent-kafka, one batch.
        kv(Some("c-null"), None),
        kv(Some("c-empty"), Some("")),
        kv(Some("c-text"), Some("x")),
        kv(None, None),
        // kafka-python.
        kv(Some("p-null"), None),
        kv(Some("p-empty"), Some("")),
        // HTTP.
        kv(Some("h-null"), None),
        kv(Some("h-empty"), Some("")),
    ]
}

/// Record `i`'s headers, in order: `n` null, `e` empty (hex). kafka-python
/// (records 4 and 5) refuses null header values, so it sends only `e`;
/// HTTP (6 and 7) sends them as a JSON object, kept in the order written.
fn headers(i: usize) -> Value {
    match i {
        4 | 5 => json!([["e", ""]]),
        _ => json!([["n", null], ["e", ""]]),
    }
}

/// The same as HTTP shows them.
fn http_headers(i: usize) -> Value {
    match i {
        4 | 5 => json!({"e": ""}),
        _ => json!({"n": null, "e": ""}),
    }
}

fn as_clients_send(records: &[(Option<String>, Option<String>)], first: usize) -> Vec<Value> {
    records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| json!({"key": k, "value": v, "partition": 0, "headers": headers(first + i)}))
        .collect()
}

/// What a Kafka client read, as (key, value) in hex with nulls kept.
fn read_back(out: &Value) -> Vec<(Option<String>, Option<String>)> {
    out["records"]
        .as_array()
        .expect("records")
        .iter()
        .enumerate()
        .map(|(i, r)| {
            assert_eq!(r["offset"], i as u64, "{out}");
            assert_eq!(r["headers"], headers(i), "headers of {i}: {out}");
            let s = |f: &str| r[f].as_str().map(str::to_string);
            (s("key"), s("value"))
        })
        .collect()
}

async fn check_every_reader(server: &Server, want: &[(Option<String>, Option<String>)], when: &str) {
    let b = server.kafka();
    let args = json!({"bootstrap": b, "topic": "n", "partition": 0, "offset": 0, "count": want.len(), "timeout": 30});
    for lib in ["confluent", "kafkapython"] {
        assert_eq!(read_back(&py(lib, "consume", &args)), want, "{lib}, {when}");
    }
    // kcat with -Z prints NULL for a null value, and for an empty one too
    // (it tests the length): it sees the records, the Python clients and
    // HTTP tell null from empty.
    let kcat_z = kcat(
        &[
            "-b",
            &b,
            "-C",
            "-t",
            "n",
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-Z",
            "-f",
            "%o|%s\n",
        ],
        b"",
    );
    let want_z: Vec<String> = want
        .iter()
        .enumerate()
        .map(|(i, (_, v))| {
            let text = v.as_deref().map(|h| String::from_utf8(hex_bytes(h)).expect("utf8"));
            format!(
                "{i}|{}",
                text.filter(|t| !t.is_empty()).unwrap_or_else(|| "NULL".into())
            )
        })
        .collect();
    assert_eq!(kcat_z.lines().collect::<Vec<_>>(), want_z, "kcat -Z, {when}");
    // HTTP: `null` for a null value, `""` for an empty one.
    let url = format!("{}?offset=0", support::records_url(server, "n", 0));
    let resp = support::client().get(url).send().await.expect("GET records");
    let (status, body) = support::json_of(resp).await;
    assert!(status.is_success(), "{body}");
    let http: Vec<(Option<String>, Option<String>)> = body["records"]
        .as_array()
        .expect("records")
        .iter()
        .enumerate()
        .map(|(i, r)| {
            // As text: the object keeps the record's order.
            assert_eq!(r["headers"].to_string(), http_headers(i).to_string(), "{r}");
            let s = |f: &str| r[f].as_str().map(|t| hex(t.as_bytes()));
            (s("key"), s("value"))
        })
        .collect();
    assert_eq!(http, want, "HTTP, {when}: {body}");
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_values_stay_null_across_clients_faces_and_restarts() {
    let mut server = Server::start().await;
    let c = support::client();
    support::create_stream(&c, &server, "n", 1).await;
    let b = server.kafka();
    let want = expected();

    let sent = py(
        "confluent",
        "produce",
        &json!({"bootstrap": b, "topic": "n", "records": as_clients_send(&want[..4], 0), "linger_ms": 50}),
    );
    assert_eq!(sent["results"].as_array().map(Vec::len), Some(4), "{sent}");
    let sent = py(
        "kafkapython",
        "produce",
        &json!({"bootstrap": b, "topic": "n", "records": as_clients_send(&want[4..6], 4)}),
    );
    assert_eq!(sent["results"].as_array().map(Vec::len), Some(2), "{sent}");
    let hs = json!({"n": null, "e": ""});
    let http = json!([{"key": "h-null", "value": null, "headers": hs}, {"key": "h-empty", "value": "", "headers": hs}]);
    assert_eq!(support::produce(&c, &server, "n", 0, &http).await, vec![6, 7]);

    // Right after produce: the confluent batch comes from the fetch cache.
    check_every_reader(&server, &want, "as produced").await;
    // After a kill -9: the cache is empty, every record converted from
    // what the WAL recovered.
    server.kill();
    server.restart().await;
    check_every_reader(&server, &want, "after kill -9 and restart").await;
}
