//! Changing a topic's retention after creation, with clients nobody here
//! wrote (kafka-python's AlterConfigs and IncrementalAlterConfigs,
//! confluent-kafka's IncrementalAlterConfigs and DescribeConfigs), over
//! HTTP (`PATCH /streams/{name}`) and with the CLI; the change survives a
//! kill -9, and what cannot change is refused with the right code. A
//! broker's configs are the node's settings under Kafka's names.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli_support::sluice;
use crate::kafka_support::{hex, py};
use crate::support::{self, Server};

fn describe(b: &str) -> Value {
    py(
        "confluent",
        "describe_configs",
        &json!({"bootstrap": b, "topic": "cfg"}),
    )["configs"]
        .clone()
}

fn retention(configs: &Value) -> (String, String) {
    let s = |k: &str| {
        configs[k]
            .as_str()
            .unwrap_or_else(|| panic!("no {k}: {configs}"))
            .to_string()
    };
    (s("retention.ms"), s("retention.bytes"))
}

/// confluent-kafka's IncrementalAlterConfigs of `topic` with `change`'s
/// `set`, `delete` and `validate_only`.
fn incremental_alter(b: &str, topic: &str, change: Value) -> Value {
    let mut args = json!({"bootstrap": b, "topic": topic});
    let fields = change.as_object().expect("object").clone();
    args.as_object_mut().expect("object").extend(fields);
    py("confluent", "alter_configs", &args)
}

/// A stream's compaction tuning as HTTP shows it.
fn tuning(stream: &Value) -> (Value, Value, Value) {
    let c = &stream["compaction"];
    (
        c["delete_retention_ms"].clone(),
        c["min_compaction_lag_ms"].clone(),
        c["min_cleanable_dirty_ratio"].clone(),
    )
}

fn pair(ms: &str, bytes: &str) -> (String, String) {
    (ms.to_string(), bytes.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_retention_changes_over_kafka_http_and_the_cli() {
    let mut server = Server::start().await;
    let b = server.kafka();
    let created = py(
        "kafkapython",
        "create_topic",
        &json!({"bootstrap": b, "topic": "cfg", "partitions": 1}),
    );
    assert_eq!(created["ok"], true, "{created}");
    let before = describe(&b);
    assert_eq!(retention(&before), pair("-1", "-1"), "{before}");
    assert_eq!(before["cleanup.policy"], "delete", "{before}");

    // kafka-python: IncrementalAlterConfigs (its default), then AlterConfigs,
    // which it fills in with the other keys set on the topic (it reads
    // them, and where they come from, with DescribeConfigs first).
    let alter = |configs: Value, incremental: Option<bool>| {
        let out = py(
            "kafkapython",
            "alter_configs",
            &json!({"bootstrap": b, "topic": "cfg", "configs": configs, "incremental": incremental}),
        );
        assert_eq!(out["result"]["topic"]["cfg"], "'OK'", "{out}");
    };
    alter(json!({"retention.ms": "3600000"}), None);
    alter(json!({"retention.bytes": "1048576"}), Some(false));
    assert_eq!(retention(&describe(&b)), pair("3600000", "1048576"));

    // confluent-kafka: IncrementalAlterConfigs.
    let incremental = |args: Value| incremental_alter(&b, "cfg", args);
    let dry = incremental(json!({"set": {"retention.ms": "1000"}, "validate_only": true}));
    assert_eq!(dry["ok"], true, "{dry}");
    assert_eq!(
        retention(&describe(&b)),
        pair("3600000", "1048576"),
        "validate_only changed it"
    );
    let deleted = incremental(json!({"delete": ["retention.ms"]}));
    assert_eq!(deleted["ok"], true, "{deleted}");
    assert_eq!(retention(&describe(&b)), pair("-1", "1048576"));
    for (args, code) in [
        (json!({"set": {"cleanup.policy": "compact"}}), "INVALID_CONFIG"),
        (json!({"set": {"max.message.bytes": "0"}}), "INVALID_CONFIG"),
        (json!({"set": {"segment.bytes": "1000"}}), "INVALID_CONFIG"),
        (json!({"set": {"retention.ms": "0"}}), "INVALID_CONFIG"),
        (
            json!({"topic": "nope", "set": {"retention.ms": "1000"}}),
            "UNKNOWN_TOPIC_OR_PART",
        ),
    ] {
        let out = incremental(args.clone());
        assert_eq!(out["ok"], false, "{args}: {out}");
        assert!(out["error"].as_str().is_some_and(|e| e.contains(code)), "{args}: {out}");
    }

    // The change is durable: kill -9, restart, still there.
    server.kill();
    server.restart().await;
    assert_eq!(retention(&describe(&server.kafka())), pair("-1", "1048576"));

    // HTTP: a field left out stays, null removes a limit.
    let c = support::client();
    let patch = |body: Value| c.patch(server.url("/streams/cfg")).json(&body).send();
    let s = support::expect_json(
        patch(json!({"retention_ms": 60000})).await.expect("PATCH"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (s["retention_ms"].as_u64(), s["retention_bytes"].as_u64()),
        (Some(60000), Some(1048576)),
        "{s}"
    );
    let s = support::expect_json(
        patch(json!({"retention_bytes": null})).await.expect("PATCH"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (s["retention_ms"].as_u64(), s["retention_bytes"].as_u64()),
        (Some(60000), None),
        "{s}"
    );
    let zero = patch(json!({"retention_ms": 0})).await.expect("PATCH");
    support::expect_error(zero, StatusCode::BAD_REQUEST, "invalid_config").await;
    let other = patch(json!({"name": "x"})).await.expect("PATCH");
    support::expect_error(other, StatusCode::BAD_REQUEST, "invalid_request").await;
    let missing = c
        .patch(server.url("/streams/nope"))
        .json(&json!({"retention_ms": 1}))
        .send()
        .await
        .expect("PATCH");
    support::expect_error(missing, StatusCode::NOT_FOUND, "stream_not_found").await;

    // The CLI, and Kafka sees what HTTP and the CLI set.
    let out = sluice(
        &server,
        &[
            "stream",
            "alter",
            "cfg",
            "--retention-ms",
            "none",
            "--retention-bytes",
            "2MiB",
            "--output",
            "json",
        ],
    )
    .ok()
    .json();
    assert_eq!(
        (out["retention_ms"].as_u64(), out["retention_bytes"].as_u64()),
        (None, Some(2 * 1024 * 1024)),
        "{out}"
    );
    sluice(&server, &["stream", "alter", "cfg"]).fails(2, "nothing to change");
    assert_eq!(retention(&describe(&server.kafka())), pair("-1", "2097152"));
}

/// The configs Kafka Streams gives its internal topics (repartition:
/// `delete`, `segment.bytes`, `retention.ms=-1`, create time; changelog:
/// `compact`, create time) create topics that work; a value Sluice cannot
/// honour, or a malformed one, is INVALID_CONFIG and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_streams_internal_topic_configs_are_accepted() {
    let server = Server::start().await;
    let b = server.kafka();
    let create = |lib: &str, topic: &str, config: Value| {
        py(
            lib,
            "create_topic",
            &json!({"bootstrap": b, "topic": topic, "partitions": 2, "config": config}),
        )
    };
    let repartition = json!({"cleanup.policy": "delete", "segment.bytes": "52428800",
        "retention.ms": "-1", "message.timestamp.type": "CreateTime"});
    let out = create("confluent", "app-repartition", repartition);
    assert_eq!(out["ok"], true, "{out}");
    let changelog = json!({"cleanup.policy": "compact", "message.timestamp.type": "CreateTime"});
    let out = create("kafkapython", "app-changelog", changelog);
    assert_eq!(out["ok"], true, "{out}");
    let configs = |topic: &str| {
        py(
            "confluent",
            "describe_configs",
            &json!({"bootstrap": b, "topic": topic}),
        )["configs"]
            .clone()
    };
    assert_eq!(configs("app-repartition")["retention.ms"], "-1");
    assert_eq!(configs("app-changelog")["cleanup.policy"], "compact");
    // A node alone has one replica per topic: a minimum of 1 is met.
    let out = create("confluent", "app-min-one", json!({"min.insync.replicas": "1"}));
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(configs("app-min-one")["min.insync.replicas"], "1");

    for (config, why) in [
        (
            json!({"message.timestamp.type": "LogAppendTime"}),
            "can only be `CreateTime`",
        ),
        (json!({"segment.bytes": "lots"}), "must be a number"),
        (json!({"compression.type": "zstd"}), "can only be `producer`"),
        (json!({"min.insync.replicas": "2"}), "more than the topic's 1 replica"),
        (json!({"max.compaction.lag.ms": "1000"}), "is not supported"),
    ] {
        let out = create("confluent", "refused", config.clone());
        assert_eq!(out["ok"], false, "{config}: {out}");
        let error = out["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("INVALID_CONFIG") && error.contains(why),
            "{config}: {out}"
        );
    }
    let c = support::client();
    let resp = c.get(server.url("/streams/refused")).send().await.expect("GET");
    support::expect_error(resp, StatusCode::NOT_FOUND, "stream_not_found").await;

    // Records go through the repartition topic as through any other.
    let records: Vec<Value> = (0..10)
        .map(|i| json!({"value": hex(format!("v{i}").as_bytes()), "partition": 1}))
        .collect();
    let out = py(
        "confluent",
        "produce",
        &json!({"bootstrap": b, "topic": "app-repartition", "records": records}),
    );
    let offsets: Vec<Value> = (0..10).map(|i| json!({"partition": 1, "offset": i})).collect();
    assert_eq!(out["results"], json!(offsets), "{out}");
    let url = format!("{}?offset=0", support::records_url(&server, "app-repartition", 1));
    let page: Value = c.get(url).send().await.expect("GET").json().await.expect("json");
    assert_eq!(page["records"].as_array().map(Vec::len), Some(10), "{page}");
}

/// A broker's configs, as confluent-kafka and kafka-python describe them:
/// the node's settings under Kafka's names, read-only, those the config
/// file set marked as such; another broker's id is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_configs_are_the_nodes_settings() {
    let server = Server::start_with(support::ServerOptions {
        config: Some("kafka_fetch_max_bytes = \"4MiB\"\n[groups]\ninitial_rebalance_delay = \"250ms\"\n".into()),
        ..support::ServerOptions::default()
    })
    .await;
    let b = server.kafka();
    let got = py(
        "confluent",
        "describe_configs",
        &json!({"bootstrap": b, "broker": "0", "detail": true}),
    );
    let configs = &got["configs"];
    assert_eq!(configs["fetch.max.bytes"]["value"], "4194304", "{got}");
    assert_eq!(configs["group.initial.rebalance.delay.ms"]["value"], "250", "{got}");
    assert_eq!(configs["message.max.bytes"]["value"], "67108864", "{got}");
    assert_eq!(configs["auto.create.topics.enable"]["value"], "false", "{got}");
    assert_eq!(configs["broker.id"]["value"], "0", "{got}");
    assert_eq!(configs["default.replication.factor"]["value"], "1", "{got}");
    // librdkafka's names for Kafka's config sources.
    assert_eq!(configs["fetch.max.bytes"]["source"], 4, "STATIC_BROKER_CONFIG: {got}");
    assert_eq!(configs["message.max.bytes"]["source"], 5, "DEFAULT_CONFIG: {got}");
    let all_read_only = configs
        .as_object()
        .expect("configs")
        .values()
        .all(|c| c["read_only"] == true);
    assert!(all_read_only, "{got}");

    let kp = py(
        "kafkapython",
        "describe_configs",
        &json!({"bootstrap": b, "broker": "0"}),
    );
    assert_eq!(kp["configs"]["fetch.max.bytes"], "4194304", "{kp}");
    assert_eq!(kp["configs"]["num.partitions"], "1", "{kp}");

    // Clients send a broker's configs request to that broker: one naming
    // another is refused (raw, as clients would not send it here).
    let answer = tokio::task::spawn_blocking(move || {
        use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
        use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
        let mut req = DescribeConfigsRequest::default();
        for name in ["7", ""] {
            let mut r = DescribeConfigsResource::default();
            r.resource_type = 4;
            r.configuration_keys = None;
            r.resource_name = kafka_protocol::protocol::StrBytes::from_static_str(name);
            req.resources.push(r);
        }
        let mut s = crate::kafka_bad_input::Listener(b).connect();
        let r: DescribeConfigsResponse = crate::kafka_bad_input::call(&mut s, ApiKey::DescribeConfigs, 4, &req);
        r.results
            .iter()
            .map(|x| {
                (
                    x.error_code,
                    x.error_message.as_ref().map(|m| m.to_string()),
                    x.configs.len(),
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("join");
    assert_eq!(answer[0].0, 42, "INVALID_REQUEST: {answer:?}");
    assert!(
        answer[0].1.as_deref().unwrap_or_default().contains("ask broker 7"),
        "{answer:?}"
    );
    assert_eq!(
        (answer[1].0, answer[1].2 >= 10),
        (0, true),
        "the empty name: the defaults"
    );
}

/// A compacted topic created with Kafka's compaction settings
/// (`delete.retention.ms`, `min.compaction.lag.ms`,
/// `min.cleanable.dirty.ratio`) is compacted with them: HTTP shows them on
/// the stream, DescribeConfigs gives them as set on the topic (on other
/// topics, Kafka's defaults), and they change after creation over Kafka
/// (SET, DELETE; kafka-python's AlterConfigs sends every key set on the
/// topic along, so they stay) and HTTP. Malformed values, and changes on a
/// topic that is not compacted, are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topics_take_kafkas_compaction_settings() {
    let server = Server::start().await;
    let b = server.kafka();
    let create = |topic: &str, config: Value| {
        py(
            "confluent",
            "create_topic",
            &json!({"bootstrap": b, "topic": topic, "partitions": 1, "config": config}),
        )
    };
    let tuned = json!({"cleanup.policy": "compact", "delete.retention.ms": "100",
        "min.compaction.lag.ms": "2000", "min.cleanable.dirty.ratio": "0.01"});
    assert_eq!(create("tuned", tuned)["ok"], true);
    for (config, why) in [
        (
            json!({"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "2"}),
            "between 0 and 1",
        ),
        (
            json!({"cleanup.policy": "compact", "delete.retention.ms": "-5"}),
            "milliseconds",
        ),
    ] {
        let out = create("never", config.clone());
        let error = out["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("INVALID_CONFIG") && error.contains(why),
            "{config}: {out}"
        );
    }
    let resp = support::client()
        .get(server.url("/streams/tuned"))
        .send()
        .await
        .expect("GET stream");
    let s = support::expect_json(resp, StatusCode::OK).await;
    assert_eq!(tuning(&s), (json!(100), json!(2000), json!(0.01)), "{s}");
    let described = |topic: &str| {
        py(
            "confluent",
            "describe_configs",
            &json!({"bootstrap": b, "topic": topic, "detail": true}),
        )["configs"]
            .clone()
    };
    let got = described("tuned");
    let seen = |configs: &Value, k: &str| (configs[k]["value"].clone(), configs[k]["source"].clone());
    assert_eq!(seen(&got, "delete.retention.ms"), (json!("100"), json!(1)), "{got}");
    assert_eq!(seen(&got, "min.compaction.lag.ms"), (json!("2000"), json!(1)), "{got}");
    assert_eq!(
        seen(&got, "min.cleanable.dirty.ratio"),
        (json!("0.01"), json!(1)),
        "{got}"
    );
    assert_eq!(create("plain", json!({}))["ok"], true);
    let plain = described("plain");
    assert_eq!(
        seen(&plain, "delete.retention.ms"),
        (json!("86400000"), json!(5)),
        "{plain}"
    );
    assert_eq!(
        seen(&plain, "min.cleanable.dirty.ratio"),
        (json!("0.5"), json!(5)),
        "{plain}"
    );

    // kafka-python's AlterConfigs sends the keys set on the topic along.
    let out = py(
        "kafkapython",
        "alter_configs",
        &json!({"bootstrap": b, "topic": "tuned", "configs": {"retention.ms": "-1"}, "incremental": false}),
    );
    assert_eq!(out["result"]["topic"]["tuned"], "'OK'", "{out}");
    let got = described("tuned");
    assert_eq!(
        seen(&got, "delete.retention.ms"),
        (json!("100"), json!(1)),
        "kept: {got}"
    );

    // Changed after creation: SET, DELETE (Kafka's default again), and
    // malformed values refused.
    let alter = |topic: &str, change: Value| incremental_alter(&b, topic, change);
    let out = alter(
        "tuned",
        json!({"set": {"delete.retention.ms": "5"}, "delete": ["min.compaction.lag.ms"]}),
    );
    assert_eq!(out["ok"], true, "{out}");
    let got = described("tuned");
    assert_eq!(seen(&got, "delete.retention.ms"), (json!("5"), json!(1)), "{got}");
    assert_eq!(seen(&got, "min.compaction.lag.ms"), (json!("0"), json!(5)), "{got}");
    assert_eq!(
        seen(&got, "min.cleanable.dirty.ratio"),
        (json!("0.01"), json!(1)),
        "{got}"
    );
    let out = alter("tuned", json!({"set": {"min.cleanable.dirty.ratio": "2"}}));
    let error = out["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("INVALID_CONFIG") && error.contains("between 0 and 1"),
        "{out}"
    );
    // On a topic that is not compacted they tune nothing: refused.
    let out = alter("plain", json!({"set": {"delete.retention.ms": "5"}}));
    let error = out["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("INVALID_CONFIG") && error.contains("not compacted"),
        "{out}"
    );

    // Over HTTP, on the stream itself.
    let patch = |stream: &str, body: Value| {
        support::client()
            .patch(server.url(&format!("/streams/{stream}")))
            .json(&body)
            .send()
    };
    let body = json!({"compaction": {"min_cleanable_dirty_ratio": 0.2, "min_compaction_lag_ms": 30}});
    let s = support::expect_json(patch("tuned", body).await.expect("PATCH"), StatusCode::OK).await;
    assert_eq!(tuning(&s), (json!(5), json!(30), json!(0.2)), "{s}");
    for (stream, body, code) in [
        (
            "plain",
            json!({"compaction": {"delete_retention_ms": 5}}),
            "invalid_config",
        ),
        (
            "tuned",
            json!({"compaction": {"min_cleanable_dirty_ratio": 1.5}}),
            "invalid_request",
        ),
        ("tuned", json!({"compaction": {"plugin": "other"}}), "invalid_request"),
    ] {
        let resp = patch(stream, body).await.expect("PATCH");
        support::expect_error(resp, StatusCode::BAD_REQUEST, code).await;
    }
}

/// A topic's own `max.message.bytes` bounds the record batches producers
/// send to it (MESSAGE_TOO_LARGE above, nothing stored), DescribeConfigs
/// gives it as set on the topic (others: the node's `max_batch_bytes`), and
/// it changes after creation: kafka-python's AlterConfigs sends it along,
/// confluent's IncrementalAlterConfigs raises it (a batch refused before
/// is then taken) and DELETEs it (the node's again), and HTTP PATCH sets
/// and clears it. More than the node takes is INVALID_CONFIG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topics_max_message_bytes_bounds_the_batches_producers_send() {
    let server = Server::start().await;
    let b = server.kafka();
    let create = |topic: &str, max: &str| {
        py(
            "confluent",
            "create_topic",
            &json!({"bootstrap": b, "topic": topic, "partitions": 1, "config": {"max.message.bytes": max}}),
        )
    };
    for (max, why) in [
        ("0", "positive"),
        ("x", "positive"),
        ("1099511627776", "more than this node's"),
    ] {
        let out = create("never", max);
        let error = out["error"].as_str().unwrap_or_default();
        assert!(error.contains("INVALID_CONFIG") && error.contains(why), "{max}: {out}");
    }
    assert_eq!(create("small", "2000")["ok"], true);
    let configs = py(
        "confluent",
        "describe_configs",
        &json!({"bootstrap": b, "topic": "small", "detail": true}),
    )["configs"]
        .clone();
    let m = &configs["max.message.bytes"];
    assert_eq!((&m["value"], &m["source"]), (&json!("2000"), &json!(1)), "{configs}");
    let send = |len: usize| {
        let out = py(
            "confluent",
            "produce",
            &json!({"bootstrap": b, "topic": "small", "config": {"retries": 0, "linger.ms": 0},
                    "records": [{"value": hex(&vec![b'x'; len]), "partition": 0}]}),
        );
        out["results"][0].clone()
    };
    let refused = send(5000);
    assert!(refused["error"].to_string().contains("size too large"), "{refused}");
    assert_eq!(send(500)["offset"], 0, "the refused batch stored nothing");
    let out = py(
        "kafkapython",
        "alter_configs",
        &json!({"bootstrap": b, "topic": "small", "configs": {"retention.ms": "-1"}, "incremental": false}),
    );
    assert_eq!(out["result"]["topic"]["small"], "'OK'", "{out}");
    let alter = |change: Value| incremental_alter(&b, "small", change);
    let described = || {
        let out = py(
            "confluent",
            "describe_configs",
            &json!({"bootstrap": b, "topic": "small", "detail": true}),
        );
        let m = &out["configs"]["max.message.bytes"];
        (m["value"].clone(), m["source"].clone())
    };
    // More than the node takes is refused and changes nothing.
    let out = alter(json!({"set": {"max.message.bytes": "1099511627776"}}));
    let error = out["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("INVALID_CONFIG") && error.contains("more than this node's"),
        "{out}"
    );
    assert_eq!(described(), (json!("2000"), json!(1)));
    // Raised, the record refused before now lands, after the one at 0.
    assert_eq!(alter(json!({"set": {"max.message.bytes": "8000"}}))["ok"], true);
    assert_eq!(described(), (json!("8000"), json!(1)));
    assert_eq!(send(5000)["offset"], 1, "taken under the raised limit");
    // DELETE: the node's limit again (its max_batch_bytes, 64 MiB by
    // default, a static broker config).
    assert_eq!(alter(json!({"delete": ["max.message.bytes"]}))["ok"], true);
    assert_eq!(described(), (json!((64u64 << 20).to_string()), json!(4)));
    // Over HTTP: set and cleared on the stream itself, 0 refused.
    let patch = |body: Value| support::client().patch(server.url("/streams/small")).json(&body).send();
    let (status, out) = support::json_of(patch(json!({"max_message_bytes": 3000})).await.expect("PATCH")).await;
    assert_eq!(
        (status, &out["max_message_bytes"]),
        (StatusCode::OK, &json!(3000)),
        "{out}"
    );
    let resp = patch(json!({"max_message_bytes": 0})).await.expect("PATCH");
    support::expect_error(resp, StatusCode::BAD_REQUEST, "invalid_config").await;
    let (status, out) = support::json_of(patch(json!({"max_message_bytes": null})).await.expect("PATCH")).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert!(out.get("max_message_bytes").is_none(), "cleared: {out}");
    let resp = support::client()
        .post(server.url("/streams"))
        .json(&json!({"name": "never", "partitions": 1, "max_message_bytes": 0}))
        .send()
        .await
        .expect("POST /streams");
    support::expect_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
}
