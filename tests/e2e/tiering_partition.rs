//! The object store cut off by a network partition, with real processes
//! (moto behind the fault proxy): produce goes on into the local WAL while
//! uploads time out; once the link heals for new connections only (the
//! old ones left silently dead, as a real partition leaves them), uploads
//! resume, the WAL is trimmed behind them and every record reads back,
//! cold from the objects included.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_test_artifacts::moto;

use crate::fault_proxy::FaultProxy;
use crate::support::{self, Server, ServerOptions};

async fn produce(server: &Server, from: usize, n: usize, sent: &mut Vec<String>) {
    let c = support::client();
    for i in (from..from + n).step_by(10) {
        let values: Vec<String> = (i..i + 10).map(|k| format!("{k:06}-{}", "v".repeat(500))).collect();
        let records: Vec<Value> = values.iter().map(|v| json!({"value": v})).collect();
        let offsets = support::produce(&c, server, "t", 0, &json!(records)).await;
        assert_eq!(offsets[0], sent.len() as u64);
        sent.extend(values);
    }
}

async fn wal_start(server: &Server) -> u64 {
    support::wal_starts(&support::client(), server, "t").await.0[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_resume_after_a_partition_from_the_object_store() {
    let test = "uploads_resume_after_a_partition_from_the_object_store";
    let Some(s3) = moto::server_or_skip(test) else {
        return;
    };
    let bucket = s3.unique_bucket("e2e-tier-partition");
    let (proxy, envs) = FaultProxy::in_front_of_s3(s3).await;
    let config = format!(
        "object_store = \"s3://{bucket}/node\"\nupload_chunk_bytes = \"64KiB\"\nupload_min_bytes = \"1B\"\n\
         upload_interval = \"0s\"\nremote_timeout = \"2s\"\nremote_retries = 1\ncache_bytes = \"1MiB\"\n\
         cold_cache_bytes = \"1MiB\"\n"
    );
    let server = Server::start_with(ServerOptions {
        envs,
        config: Some(config),
        ..ServerOptions::default()
    })
    .await;
    support::create_stream(&support::client(), &server, "t", 1).await;
    let mut sent = Vec::new();
    produce(&server, 0, 300, &mut sent).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while wal_start(&server).await < 300 {
        assert!(
            Instant::now() < deadline,
            "nothing tiered through the proxy\n{}",
            server.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Partitioned: appends go on into the WAL, nothing more is tiered.
    proxy.partition();
    let cut_at = wal_start(&server).await;
    produce(&server, 300, 700, &mut sent).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(wal_start(&server).await <= cut_at + 10, "tiered across a partition?");

    // Healed for new connections: the uploader catches up and the WAL is
    // trimmed behind it. Calls stuck on the dead connections give up after
    // `remote_timeout` (2 s): well within 20 s, where the client library's
    // own 30 s timeout would not be.
    proxy.heal_new_connections_only();
    let deadline = Instant::now() + Duration::from_secs(20);
    while wal_start(&server).await < sent.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "the uploader did not catch up after the heal (wal_start {})\n{}",
            wal_start(&server).await,
            server.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let c = support::client();
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let url = format!(
            "{}?offset={}&max_records=100",
            support::records_url(&server, "t", 0),
            got.len()
        );
        let page = support::expect_json(c.get(url).send().await.expect("read"), reqwest::StatusCode::OK).await;
        let records = page["records"].as_array().expect("records");
        assert!(!records.is_empty(), "read stopped at {}", got.len());
        got.extend(records.iter().map(|r| r["value"].as_str().expect("text").to_string()));
    }
    assert!(got == sent, "records read back differ from those sent");
}
