//! Offsets by time on data that lives only in the object store, after a
//! kill -9: confluent-kafka's and kafka-python's ListOffsets by timestamp
//! and HTTP `?timestamp=` give the exact first offset at or after each time
//! (checked against the timestamps the records were written with over
//! HTTP, some out of order),
//! with the time index rebuilt from the segments' recorded timestamps.
//! Their admin clients' other specs agree with the data and the node's
//! status: the first record with the largest timestamp (in tiered data,
//! tied later in the WAL), the first offset the WAL holds and the last
//! tiered one.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::kafka_support::py;
use crate::support::{self, Server, ServerOptions};

const N: u64 = 6_000;
const BASE_TS: u64 = 1_650_000_000_000;

/// Mostly rising, every 41st record two seconds in the past; records
/// 1,000 and 5,000 an hour ahead (a clock jump).
fn ts(i: u64) -> u64 {
    match i {
        1_000 | 5_000 => BASE_TS + 3_600_000,
        _ => BASE_TS + i * 10 - if i.is_multiple_of(41) { 2_000 } else { 0 },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_by_time_are_exact_on_tiered_data_after_a_kill() {
    // Small segments and eager uploads: most offsets leave the WAL.
    let options = ServerOptions {
        config: Some(
            "upload_chunk_bytes = \"64KiB\"\n\
             segment_bytes = \"256KiB\"\n\
             upload_min_bytes = \"1B\"\n\
             upload_interval = \"0s\"\n"
                .into(),
        ),
        ..ServerOptions::default()
    };
    let mut server = Server::start_with(options).await;
    let b = server.kafka();
    let c = support::client();
    support::create_stream(&c, &server, "tt", 1).await;
    // Produced over HTTP, with the times given (Kafka clients only read).
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let records: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"value": format!("{i:0>200}"), "timestamp": ts(*i)}))
            .collect();
        support::produce(&c, &server, "tt", 0, &json!(records)).await;
    }

    // Wait until most offsets are only in the object store, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (starts, st) = support::wal_starts(&c, &server, "tt").await;
        if starts[0] >= N * 2 / 3 {
            break;
        }
        assert!(Instant::now() < deadline, "not tiered in time: {st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill();
    server.restart().await;

    let targets = [
        0,
        ts(0),
        ts(41) + 1,
        ts(500),
        ts(1_234) + 1,
        ts(3_999) + 5,
        ts(N - 1),
        ts(N - 1) + 1,
    ];
    let want: Vec<i64> = targets
        .iter()
        .map(|t| (0..N).find(|i| ts(*i) >= *t).map_or(-1, |i| i as i64))
        .collect();
    for lib in ["confluent", "kafkapython"] {
        let o = py(
            lib,
            "offsets_for_times",
            &json!({"bootstrap": b, "topic": "tt", "partition": 0, "timestamps": targets}),
        );
        assert_eq!(o["offsets"], json!(want), "{lib}: {o}");
    }
    let url = format!(
        "{}?timestamp={}&max_records=1",
        support::records_url(&server, "tt", 0),
        ts(1_234) + 1
    );
    let page: Value = c.get(url).send().await.expect("GET").json().await.expect("json");
    assert_eq!(page["records"][0]["offset"].as_i64(), Some(want[4]), "{page}");

    let top = json!([1_000, ts(1_000)]);
    let args = |specs: Value| json!({"bootstrap": b, "topic": "tt", "partition": 0, "specs": specs});
    let o = py(
        "confluent",
        "list_offsets",
        &args(json!(["earliest", "latest", "max_timestamp"])),
    );
    assert_eq!(o["offsets"][0][0], json!(0), "{o}");
    assert_eq!(o["offsets"][1][0], json!(N), "{o}");
    assert_eq!(o["offsets"][2], top, "confluent: {o}");
    // The uploader may still be moving the WAL's start: compare with the
    // status read before and after, once both agree.
    let specs = json!(["earliest", "latest", "max_timestamp", "earliest_local", "latest_tiered"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let before = tier_offsets(&c, &server).await;
        let o = py("kafkapython", "list_offsets", &args(specs.clone()));
        if tier_offsets(&c, &server).await != before {
            assert!(Instant::now() < deadline, "the WAL's start kept moving");
            continue;
        }
        let got: Vec<Value> = (0..5).map(|i| o["offsets"][i][0].clone()).collect();
        let (local_start, tiered_end) = before;
        assert!(tiered_end > 0 && local_start > 0, "{before:?}");
        assert_eq!(
            got,
            [
                json!(0),
                json!(N),
                json!(1_000),
                json!(local_start),
                json!(tiered_end - 1)
            ],
            "{o}"
        );
        assert_eq!(o["offsets"][2], top, "kafka-python: {o}");
        break;
    }
}

/// (first offset in the WAL, end of the tiered records) of partition 0.
async fn tier_offsets(c: &reqwest::Client, server: &Server) -> (u64, u64) {
    let (starts, st) = support::wal_starts(c, server, "tt").await;
    let tiered = st["partitions"][0]["tier"]["tiered_end"].as_u64();
    (starts[0], tiered.unwrap_or_else(|| panic!("no tiered_end: {st}")))
}
