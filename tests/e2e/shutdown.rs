//! Graceful shutdown: SIGTERM / SIGINT make the server exit 0 in time, and
//! everything it acknowledged is there after a restart.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{self, Rng, Server, expect_json};
use crate::workload::{self, Ledger, Load};

const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Records with explicit timestamps so the whole record can be compared.
fn batch(partition: u32, i: u32) -> Value {
    let records: Vec<Value> = (0..4)
        .map(|j| {
            json!({
                "key": format!("k{partition}-{i}"),
                "value": format!("v{partition}-{i}-{j}"),
                "headers": {"i": i.to_string(), "bin": {"base64": "AP8="}},
                "timestamp": 1_000_000 + (i * 4 + j) as u64,
            })
        })
        .collect();
    Value::Array(records)
}

/// What a read must return for the records `batch` produced at `offset`.
fn expected(partition: u32, i: u32, j: u32, offset: u64) -> Value {
    json!({
        "offset": offset,
        "timestamp": 1_000_000 + (i * 4 + j) as u64,
        "key": format!("k{partition}-{i}"),
        "value": format!("v{partition}-{i}-{j}"),
        "headers": {"i": i.to_string(), "bin": {"base64": "AP8="}},
    })
}

/// Produces batch `i` to partition `i % 3` for every `i` in `rounds`.
async fn produce_rounds(c: &reqwest::Client, server: &Server, want: &mut [Vec<Value>], rounds: std::ops::Range<u32>) {
    for i in rounds {
        let p = i % 3;
        let offsets = support::produce(c, server, "g", p, &batch(p, i)).await;
        for (j, o) in offsets.into_iter().enumerate() {
            assert_eq!(o, want[p as usize].len() as u64, "offsets continue densely");
            want[p as usize].push(expected(p, i, j as u32, o));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_shut_down_cleanly_and_keep_data() {
    let mut server = Server::start().await;
    let c = support::client();
    let created = support::create_stream(&c, &server, "g", 3).await;

    let mut want: Vec<Vec<Value>> = vec![Vec::new(); 3];
    produce_rounds(&c, &server, &mut want, 0..60).await;

    for (signal, next) in [("TERM", 60..90), ("INT", 90..120)] {
        let status = server.signal_and_wait(signal, EXIT_TIMEOUT).await;
        assert!(
            status.success(),
            "exit status after SIG{signal}: {status}\n{}",
            server.log_tail(40)
        );
        server.restart().await;

        let got = expect_json(c.get(server.url("/streams/g")).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(got["id"], created["id"], "stream id changed over a restart");
        assert_eq!(
            got["created_ms"], created["created_ms"],
            "created_ms changed over a restart"
        );
        for p in 0..3u32 {
            assert_eq!(
                got["partitions"][p as usize]["end_offset"],
                want[p as usize].len(),
                "{got}"
            );
            let records = support::read_all(&c, &server, "g", p, "").await;
            assert_eq!(records, want[p as usize], "partition {p} after SIG{signal} and restart");
        }
        // Appends continue after the recovered tail.
        produce_rounds(&c, &server, &mut want, next).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_keeps_every_acknowledged_record() {
    let (mut rng, seed) = Rng::from_env_or_time();
    println!("seed {seed}");
    let mut server = Server::start().await;
    let c = support::client();
    support::create_stream(&c, &server, "load", 2).await;
    let mut ledger = Ledger::new(4, 2);

    for round in 0..2 {
        let load = Load::start(&server, "load", 2, &ledger, round, rng.next_u64());
        tokio::time::sleep(Duration::from_millis(rng.range(200, 500))).await;
        load.mark_stopping();
        let status = server.signal_and_wait("TERM", EXIT_TIMEOUT).await;
        assert!(status.success(), "exit status after SIGTERM under load: {status}");
        let (acked, maybe, _) = load.finish(&mut ledger).await;
        server.restart().await;
        let stats = workload::check(&server, "load", 2, &mut ledger).await;
        println!(
            "round {round}: {acked} acked, {maybe} unacked ({} of all unacked present); {} stored",
            stats.maybe_present, stats.records
        );
        assert!(acked > 0, "no load before SIGTERM");
    }
}
