//! The Kafka face with clients nobody here wrote: kcat (librdkafka),
//! confluent-kafka (librdkafka) and kafka-python, across codecs, faces,
//! offsets by time and a kill -9 under an idempotent producer.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::fault_proxy::FaultProxy;
use crate::kafka_support::{Sequence, hex, kcat, py};
use crate::support::{self, Server, ServerOptions};

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

fn b64(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        other => base64::engine::general_purpose::STANDARD
            .decode(other["base64"].as_str().expect("base64 field"))
            .expect("valid base64"),
    }
}

/// How many partitions stream `name` has, over HTTP.
async fn partitions(server: &Server, name: &str) -> usize {
    let resp = support::client()
        .get(server.url(&format!("/streams/{name}")))
        .send()
        .await
        .expect("GET stream");
    let (status, info) = support::json_of(resp).await;
    assert!(status.is_success(), "{info}");
    info["partitions"].as_array().map_or(0, Vec::len)
}

async fn http_records(server: &Server, stream: &str, partition: u32, offset: u64) -> Vec<Value> {
    let url = format!(
        "{}?offset={offset}&max_records=10000",
        support::records_url(server, stream, partition)
    );
    let resp = support::client().get(url).send().await.expect("GET records");
    let (status, body) = support::json_of(resp).await;
    assert!(status.is_success(), "{body}");
    body["records"].as_array().expect("records").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_round_trips_keys_repeated_headers_and_every_codec() {
    let server = Server::start().await;
    let c = support::client();
    support::create_stream(&c, &server, "k", 1).await;
    let b = server.kafka();
    for codec in CODECS {
        let lines: String = (0..5).map(|i| format!("key{i}:{codec}-{i}\n")).collect();
        kcat(
            &[
                "-b", &b, "-P", "-t", "k", "-p", "0", "-K:", "-z", codec, "-H", "h=1", "-H", "h=2",
            ],
            lines.as_bytes(),
        );
    }
    // Over HTTP: every record at its offset, key and value byte for byte.
    let records = http_records(&server, "k", 0, 0).await;
    assert_eq!(records.len(), 25);
    for (n, r) in records.iter().enumerate() {
        let (codec, i) = (CODECS[n / 5], n % 5);
        assert_eq!(r["offset"], n as u64);
        assert_eq!(b64(&r["key"]), format!("key{i}").into_bytes());
        assert_eq!(b64(&r["value"]), format!("{codec}-{i}").into_bytes());
    }
    // Over Kafka, from the middle of the second batch: both `h` headers kept.
    let out = kcat(
        &[
            "-b",
            &b,
            "-C",
            "-t",
            "k",
            "-p",
            "0",
            "-o",
            "7",
            "-c",
            "3",
            "-e",
            "-f",
            "%o|%k|%s|%h\n",
        ],
        b"",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "7|key2|gzip-2|h=1,h=2",
            "8|key3|gzip-3|h=1,h=2",
            "9|key4|gzip-4|h=1,h=2"
        ]
    );
    // Metadata names the topic with its one partition led by this node.
    let meta = kcat(&["-b", &b, "-L", "-t", "k"], b"");
    assert!(meta.contains("topic \"k\" with 1 partitions"), "{meta}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_and_kafka_python_round_trip_across_faces_and_find_offsets_by_time() {
    let server = Server::start().await;
    let b = server.kafka();
    let created = py(
        "kafkapython",
        "create_topic",
        &json!({"bootstrap": b, "topic": "x", "partitions": 2}),
    );
    assert_eq!(created["ok"], true, "{created}");
    let again = py(
        "confluent",
        "create_topic",
        &json!({"bootstrap": b, "topic": "x", "partitions": 2}),
    );
    assert!(
        again["error"].as_str().unwrap_or("").contains("TOPIC_ALREADY_EXISTS"),
        "{again}"
    );
    assert_eq!(partitions(&server, "x").await, 2);

    // confluent-kafka -> partition 0, binary keys and values, one codec per round.
    let base_ts: u64 = 1_600_000_000_000;
    let mut sent = Vec::new();
    for (round, codec) in CODECS.iter().enumerate() {
        let records: Vec<Value> = (0..4)
            .map(|i| {
                let n = round * 4 + i;
                let value: Vec<u8> = (0..=255u8).map(|x| x.wrapping_add(n as u8)).collect();
                let key = vec![n as u8, 0, 255];
                sent.push((key.clone(), value.clone(), base_ts + n as u64 * 1000));
                json!({"key": hex(&key), "value": hex(&value), "partition": 0,
                       "headers": [["n", hex(n.to_string().as_bytes())], ["n", hex(b"again")]],
                       "timestamp": base_ts + n as u64 * 1000})
            })
            .collect();
        let out = py(
            "confluent",
            "produce",
            &json!({"bootstrap": b, "topic": "x", "records": records, "config": {"compression.type": codec}}),
        );
        let offsets: Vec<u64> = out["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["offset"].as_u64().unwrap())
            .collect();
        assert_eq!(
            offsets,
            ((round * 4) as u64..(round * 4 + 4) as u64).collect::<Vec<_>>(),
            "{out}"
        );
    }
    // HTTP reads exactly what the Kafka client sent: the repeated header
    // name makes each record's headers a list, in order.
    let records = http_records(&server, "x", 0, 0).await;
    assert_eq!(records.len(), sent.len());
    for (n, (r, (key, value, ts))) in records.iter().zip(&sent).enumerate() {
        assert_eq!(&b64(&r["key"]), key);
        assert_eq!(&b64(&r["value"]), value);
        assert_eq!(r["timestamp"], *ts);
        assert_eq!(
            r["headers"],
            json!([{"name": "n", "value": n.to_string()}, {"name": "n", "value": "again"}]),
            "{r}"
        );
    }
    // kafka-python reads from the middle of a batch, headers in order.
    let got = py(
        "kafkapython",
        "consume",
        &json!({"bootstrap": b, "topic": "x", "partition": 0, "offset": 6, "count": 14}),
    );
    let got = got["records"].as_array().unwrap();
    assert_eq!(got.len(), 14);
    for (g, n) in got.iter().zip(6..) {
        assert_eq!(g["offset"], n);
        assert_eq!(g["value"], hex(&sent[n].1));
        assert_eq!(g["timestamp"], sent[n].2);
        assert_eq!(
            g["headers"],
            json!([["n", hex(n.to_string().as_bytes())], ["n", hex(b"again")]])
        );
    }
    // Offsets by time, through both libraries.
    let times = json!([0, base_ts + 5_000, base_ts + 5_500, base_ts + 99_000_000]);
    for lib in ["confluent", "kafkapython"] {
        let o = py(
            lib,
            "offsets_for_times",
            &json!({"bootstrap": b, "topic": "x", "partition": 0, "timestamps": times}),
        );
        assert_eq!(o["offsets"], json!([0, 5, 6, -1]), "{lib}: {o}");
        assert_eq!(
            (o["low"].as_u64(), o["high"].as_u64()),
            (Some(0), Some(20)),
            "{lib}: {o}"
        );
    }
    // The same search over HTTP: `?timestamp=` instead of `?offset=`.
    for (t, first) in [(base_ts + 5_500, Some(6)), (base_ts + 99_000_000, None)] {
        let url = format!("{}?timestamp={t}&max_records=1", support::records_url(&server, "x", 0));
        let page: Value = support::client()
            .get(url)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
        assert_eq!(page["records"][0]["offset"].as_u64(), first, "{page}");
        assert_eq!(page["next_offset"], if first.is_some() { 7 } else { 20 }, "{page}");
    }
    let url = format!("{}?timestamp=1&offset=2", support::records_url(&server, "x", 0));
    let resp = support::client().get(url).send().await.expect("GET");
    assert_eq!(resp.status(), reqwest::StatusCode::BAD_REQUEST);

    // HTTP -> partition 1, consumed by confluent-kafka byte for byte.
    let c = support::client();
    let http_sent: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i, 0, 0xff, i.wrapping_mul(31)]).collect();
    let body: Vec<Value> = http_sent
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({"value": {"base64": base64::engine::general_purpose::STANDARD.encode(v)},
                   "key": format!("k{i}"), "timestamp": base_ts + i as u64,
                   "headers": [{"name": "src", "value": "http"}, {"name": "at", "value": null},
                               {"name": "src", "value": {"base64": "AP8="}}]})
        })
        .collect();
    support::produce(&c, &server, "x", 1, &json!(body)).await;
    // kafka-python (idempotent by default) appends after them with every codec.
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let out = py(
            "kafkapython",
            "produce",
            &json!({"bootstrap": b, "topic": "x", "config": {"compression_type": codec},
                    "records": [{"value": hex(codec.as_bytes()), "partition": 1}]}),
        );
        assert_eq!(out["results"].as_array().map(Vec::len), Some(1), "{out}");
    }
    let got = py(
        "confluent",
        "consume",
        &json!({"bootstrap": b, "topic": "x", "partition": 1, "offset": 0, "count": 14}),
    );
    let got = got["records"].as_array().unwrap();
    assert_eq!(got.len(), 14, "{got:?}");
    for (i, v) in http_sent.iter().enumerate() {
        assert_eq!(got[i]["value"], hex(v));
        assert_eq!(got[i]["key"], hex(format!("k{i}").as_bytes()));
        assert_eq!(
            got[i]["headers"],
            json!([["src", hex(b"http")], ["at", null], ["src", "00ff"]])
        );
        assert_eq!(got[i]["timestamp"], base_ts + i as u64);
    }
    let tail: Vec<&str> = got[10..].iter().map(|r| r["value"].as_str().unwrap()).collect();
    assert_eq!(tail, ["gzip", "snappy", "lz4", "zstd"].map(|c| hex(c.as_bytes())));

    let deleted = py("kafkapython", "delete_topic", &json!({"bootstrap": b, "topic": "x"}));
    assert_eq!(deleted["ok"], true, "{deleted}");
    let resp = c.get(server.url("/streams/x")).send().await.expect("GET");
    assert_eq!(resp.status(), reqwest::StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_producer_loses_and_duplicates_nothing_through_kill_9() {
    const COUNT: u64 = 20_000;
    let proxy = FaultProxy::bind().await;
    let mut server = Server::start_with(ServerOptions::args(&["--kafka-advertised", &proxy.addr()])).await;
    let plan = Kills {
        at: &[COUNT / 4, COUNT * 3 / 5],
        wait_trimmed: false,
        wipe: false,
    };
    idempotent_producer_through_kills(&mut server, &proxy, COUNT, &plan).await;
}

/// When [`idempotent_producer_through_kills`] kills the server, and what it
/// waits for first.
pub(crate) struct Kills<'a> {
    /// Partition ends at which answers are held and the server killed.
    pub at: &'a [u64],
    /// Wait until the WAL was trimmed past everything stored, so producer
    /// state can only come from the metadata snapshot.
    pub wait_trimmed: bool,
    /// Delete the data dir before every restart (stateless nodes).
    pub wipe: bool,
}

/// A confluent-kafka producer with `enable.idempotence` sends `count`
/// values in order to partition 0 of a new stream `idem` through `proxy`
/// (the server must advertise the proxy's address). At each of the plan's
/// points the proxy holds back the server's answers until the server has
/// stored batches the client was never told about; then the server is
/// SIGKILLed and restarted on the same ports, and the client retries those
/// batches. Every value must be stored exactly once, in order.
pub(crate) async fn idempotent_producer_through_kills(
    server: &mut Server,
    proxy: &FaultProxy,
    count: u64,
    plan: &Kills<'_>,
) {
    proxy.set_target(server.kafka());
    let c = support::client();
    support::create_stream(&c, server, "idem", 1).await;
    let args = json!({
        "bootstrap": proxy.addr(), "topic": "idem", "count": count, "pace_every": 20,
        "config": {"enable.idempotence": true, "acks": "all", "message.timeout.ms": 120000,
                   "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 200}
    });
    let producer = Sequence::spawn(&args);
    for &at in plan.at {
        let mut end = match wait_end(server, |end| end >= at).await {
            Ok(end) => end,
            Err(end) => producer.stalled(server, &format!("the kill point {at}: stalled at {end}")),
        };
        if end >= count {
            producer.stalled(server, &format!("the producer finished before the kill at {at}"));
        }
        proxy.hold();
        // The batch in flight is stored after the hold, or its answer is
        // held here already; either way the client was never told. Then
        // wait until nothing more arrives (librdkafka may send more).
        let held_from = end;
        end = match wait_end(server, |e| e > held_from || proxy.holds_answers()).await {
            Ok(end) => end,
            Err(end) => producer.stalled(
                server,
                &format!("a batch after the hold at {held_from}: stalled at {end}"),
            ),
        };
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = http_end(server).await;
            if now == end {
                break;
            }
            end = now;
        }
        if !proxy.holds_answers() {
            producer.stalled(server, &format!("no answer held at the kill at {at} (end {end})"));
        }
        if plan.wait_trimmed {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while support::wal_starts(&c, server, "idem").await.0[0] < end {
                if std::time::Instant::now() > deadline {
                    producer.stalled(server, &format!("the WAL was not trimmed past {end} in 60 s"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        println!("kill at {at}: answers held from end {held_from}, end {end}");
        server.kill();
        proxy.cut_and_release();
        if plan.wipe {
            let data = server.data_dir();
            std::fs::remove_dir_all(data).unwrap_or_else(|e| panic!("remove {}: {e}", data.display()));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.restart().await;
    }
    producer.finish(count).await;
    // Every value exactly once, in the order produced.
    let mut next = 0u64;
    let mut offset = 0;
    while next < count {
        let records = http_records(server, "idem", 0, offset).await;
        assert!(!records.is_empty(), "only {next} of {count} records stored");
        for r in &records {
            let v: u64 = String::from_utf8(b64(&r["value"])).unwrap().parse().unwrap();
            assert_eq!(v, next, "at offset {}: duplicate or gap", r["offset"]);
            next += 1;
            offset = r["offset"].as_u64().unwrap() + 1;
        }
    }
    assert_eq!(http_end(server).await, count, "records beyond the sequence");
}

/// Polls the end of `idem` until `done` holds; after 60 s, the end it
/// stalled at.
async fn wait_end(server: &Server, done: impl Fn(u64) -> bool) -> Result<u64, u64> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let end = http_end(server).await;
        if done(end) {
            return Ok(end);
        }
        if std::time::Instant::now() > deadline {
            return Err(end);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn http_end(server: &Server) -> u64 {
    let resp = support::client()
        .get(server.url("/streams/idem"))
        .send()
        .await
        .expect("GET stream");
    let body: Value = resp.json().await.expect("json");
    body["partitions"][0]["end_offset"].as_u64().expect("end_offset")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_kafka_clients_authenticate_with_sasl_plain() {
    let server = Server::start_with(crate::support::ServerOptions::args(&["--auth-token", "s3cret"])).await;
    let b = server.kafka();
    let run = |extra: &[&str]| {
        let mut args = vec!["-b", b.as_str(), "-L", "-m", "5"];
        args.extend_from_slice(extra);
        std::process::Command::new(sluice_test_artifacts::kafka_clients::kcat())
            .args(&args)
            .output()
            .expect("run kcat")
    };
    let sasl = |password: &'static str| {
        [
            "-X",
            "security.protocol=SASL_PLAINTEXT",
            "-X",
            "sasl.mechanisms=PLAIN",
            "-X",
            "sasl.username=anyone",
            "-X",
        ]
        .into_iter()
        .map(str::to_string)
        .chain([format!("sasl.password={password}")])
        .collect::<Vec<String>>()
    };
    let ok = sasl("s3cret");
    let out = run(&ok.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 brokers"));
    let wrong = sasl("wrong");
    let out = run(&wrong.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong password"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without SASL the node closes the connection before any metadata.
    let out = run(&[]);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("brokers"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_auto_created_only_when_configured() {
    // Off (the default): producing to an unknown topic fails, nothing is created.
    let server = Server::start().await;
    let b = server.kafka();
    let mut child = std::process::Command::new(sluice_test_artifacts::kafka_clients::kcat())
        .args(["-b", &b, "-P", "-t", "nope", "-p", "0", "-X", "message.timeout.ms=3000"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kcat");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"lost\n").expect("write to kcat");
    }
    let out = child.wait_with_output().expect("kcat output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() || stderr.contains("Unknown topic"),
        "producing to an unknown topic should fail: {stderr}"
    );
    let resp = support::client()
        .get(server.url("/streams/nope"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), reqwest::StatusCode::NOT_FOUND, "{out:?}");
    drop(server);
    // On: the topic appears with `kafka_default_partitions` and takes the record.
    let server = Server::start_with(crate::support::ServerOptions {
        config: Some("kafka_auto_create_topics = true\nkafka_default_partitions = 3\n".into()),
        ..Default::default()
    })
    .await;
    let b = server.kafka();
    kcat(&["-b", &b, "-P", "-t", "auto", "-p", "2"], b"made on the fly\n");
    assert_eq!(partitions(&server, "auto").await, 3);
    let records = http_records(&server, "auto", 2, 0).await;
    assert_eq!(b64(&records[0]["value"]), b"made on the fly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_time_plugins_read_kafka_produced_records() {
    let server = Server::start().await;
    let c = support::client();
    support::create_stream(&c, &server, "pl", 1).await;
    crate::plugin_api::upload(&c, &server, "upper", sluice_test_artifacts::UPPER, 1).await;
    kcat(
        &["-b", &server.kafka(), "-P", "-t", "pl", "-p", "0", "-z", "zstd"],
        b"from kafka\nsecond one\n",
    );
    let url = format!("{}?plugin=upper", support::records_url(&server, "pl", 0));
    let page: Value = c.get(url).send().await.expect("GET").json().await.expect("json");
    let values: Vec<Vec<u8>> = page["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| b64(&r["value"]))
        .collect();
    assert_eq!(values, vec![b"FROM KAFKA".to_vec(), b"SECOND ONE".to_vec()], "{page}");
}
