//! Offsets by time on data that lives only in the object store, after a
//! kill -9: confluent-kafka's and kafka-python's ListOffsets by timestamp
//! and HTTP `?timestamp=` give the exact first offset at or after each time
//! (checked against the timestamps the records were written with over
//! HTTP, some out of order),
//! with the time index rebuilt from the segments' recorded timestamps.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::kafka_support::py;
use crate::support::{self, Server, ServerOptions};

const N: u64 = 6_000;
const BASE_TS: u64 = 1_650_000_000_000;

/// Mostly rising, every 41st record two seconds in the past.
fn ts(i: u64) -> u64 {
    BASE_TS + i * 10 - if i.is_multiple_of(41) { 2_000 } else { 0 }
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
}
