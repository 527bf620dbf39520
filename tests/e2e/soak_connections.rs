//! Connection floods against a node started with a low open-file limit
//! (`prlimit`, like `ulimit -n`): idle connections and half-open ones (a
//! request head begun and never finished) on the HTTP and Kafka listeners,
//! more than the limit, while producers on established connections keep
//! writing and the WAL rolls segments. Every produce succeeds, the WAL never
//! fails (`/ready` stays 200), the flood's HTTP sockets are closed within
//! the idle timeout, and a new client is served once they are.
//!
//! The default run is small (limit 512, 600 idle + 150 half-open); the soak
//! of the hardening work is `SLUICE_SOAK=1` (limit 1024, 2,000 idle + 500
//! half-open, 30 s of producing).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{self, Server, ServerOptions};

struct Plan {
    limit: u64,
    idle: usize,
    half_open: usize,
    produce_for: Duration,
}

fn plan() -> Plan {
    if std::env::var("SLUICE_SOAK").is_ok_and(|v| v == "1") {
        Plan {
            limit: 1024,
            idle: 2_000,
            half_open: 500,
            produce_for: Duration::from_secs(30),
        }
    } else {
        Plan {
            limit: 512,
            idle: 600,
            half_open: 150,
            produce_for: Duration::from_secs(5),
        }
    }
}

/// Opens a connection; `None` if the listener's queue refused it.
fn open(addr: &str, half_open: bool) -> Option<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    if half_open {
        s.write_all(b"POST /streams/t/partitions/0/records HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .ok()?;
    }
    Some(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_idle_and_half_open_connections_do_not_stop_producers_or_the_wal() {
    let plan = plan();
    // This test process holds the flood's sockets too.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let idle_timeout = Duration::from_secs(2);
    let server = Server::start_with(ServerOptions {
        config: Some(format!(
            "segment_bytes = \"64KiB\"\nkafka_idle_timeout = \"{}ms\"\n[http]\nidle_timeout = \"{}ms\"\n",
            idle_timeout.as_millis(),
            idle_timeout.as_millis()
        )),
        nofile_limit: Some(plan.limit),
        ..ServerOptions::default()
    })
    .await;
    let producer = support::client();
    support::create_stream(&producer, &server, "t", 1).await;
    let http = server.base().trim_start_matches("http://").to_string();
    let kafka = server.kafka();

    // The flood: idle and half-open, on both listeners, more than the limit.
    let started = Instant::now();
    let flood = {
        let (http, kafka) = (http.clone(), kafka.clone());
        let (idle, half) = (plan.idle, plan.half_open);
        tokio::task::spawn_blocking(move || {
            let mut held = Vec::new();
            for i in 0..idle + half {
                let addr = if i % 4 == 3 { &kafka } else { &http };
                held.extend(open(addr, i >= idle && addr == &http).map(|s| (addr == &http, s)));
            }
            held
        })
    };

    // Producers on an established connection keep writing meanwhile, 1 KiB
    // at a time, enough for the WAL to roll its 64 KiB segments.
    let value = "x".repeat(1024);
    let mut produced = 0u64;
    while started.elapsed() < plan.produce_for {
        let records = json!([{"value": value}, {"value": value}, {"value": value}, {"value": value}]);
        let offsets = support::produce(&producer, &server, "t", 0, &records).await;
        assert_eq!(offsets.len(), 4);
        produced += 4;
    }
    let held = flood.await.expect("flood");
    let ready = producer.get(server.url("/ready")).send().await.expect("ready");
    assert_eq!(ready.status(), reqwest::StatusCode::OK, "{:?}", ready.text().await);
    let end = support::expect_json(
        producer.get(server.url("/streams/t")).send().await.expect("describe"),
        reqwest::StatusCode::OK,
    )
    .await;
    assert_eq!(
        end["partitions"][0]["end_offset"], produced,
        "every acknowledged record is there"
    );

    // The flood's HTTP sockets the server accepted are closed within the
    // idle timeout (plus the time to reach them in the accept queue).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut open_left = 0;
    for (is_http, mut s) in held.into_iter().filter(|(h, _)| *h) {
        let _ = is_http;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        s.set_read_timeout(Some(left)).expect("timeout");
        let mut buf = [0u8; 256];
        if !matches!(s.read(&mut buf), Ok(0) | Err(_)) || Instant::now() >= deadline {
            open_left += 1;
        }
    }
    assert_eq!(open_left, 0, "flood sockets still open after {:?}", started.elapsed());
    // A new client is served.
    let fresh = support::client()
        .get(server.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(fresh.status(), reqwest::StatusCode::OK);
    println!(
        "limit {}: {} idle + {} half-open; {produced} records produced in {:?}; flood closed after {:?}",
        plan.limit,
        plan.idle,
        plan.half_open,
        plan.produce_for,
        started.elapsed()
    );
}
