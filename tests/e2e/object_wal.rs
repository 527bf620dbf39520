//! The object-store WAL (`wal = "object"`), black-box on moto: concurrent
//! producers, SIGKILL mid-traffic, the node's whole data dir deleted, and a
//! restart from the object store alone. Every acknowledged record must come
//! back at its acknowledged offset (checked by [`workload::check`]). Tiering
//! runs eagerly, so the WAL is trimmed during the load and the stream's
//! creation is only in the checkpoint (`wal/checkpoints/`) when the node
//! comes back: the checkpoint path of recovery is really exercised. Two
//! crash cycles, with produce-and-read-back in between and at the end.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_test_artifacts::moto::{self, S3Server};

use crate::support::{self, Rng, Server, ServerOptions};
use crate::workload::{self, Ledger, Load, Sent};

const STREAM: &str = "owal";
const PARTITIONS: u32 = 3;
const PRODUCERS: usize = 6;
/// Bound of every wait for tiering and trimming.
const TRIM_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// The node's prefix in a fresh moto bucket.
struct Bucket {
    s3: &'static S3Server,
    bucket: String,
    prefix: String,
}

impl Bucket {
    fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// Keys under `<prefix>/<under>`, sorted, relative to the prefix.
    async fn keys(&self, under: &str) -> Vec<String> {
        let (s3, bucket, prefix) = (self.s3, self.bucket.clone(), format!("{}/", self.prefix));
        let full = format!("{prefix}{under}");
        tokio::task::spawn_blocking(move || {
            s3.list_keys(&bucket, &full)
                .unwrap_or_else(|e| panic!("list s3://{bucket}/{full}: {e}"))
                .into_iter()
                .map(|k| k.strip_prefix(&prefix).unwrap_or(&k).to_string())
                .collect()
        })
        .await
        .expect("list task")
    }

    /// Same settings on every start: an eager uploader (so the WAL is
    /// trimmed within a tick or two of any write) and short WAL objects.
    fn options(&self) -> ServerOptions {
        let config = format!(
            "wal = \"object\"\n\
             wal_object_interval = \"20ms\"\n\
             object_store = \"{}\"\n\
             upload_chunk_bytes = \"64KiB\"\n\
             upload_min_bytes = \"1B\"\n\
             upload_interval = \"0s\"\n",
            self.url()
        );
        ServerOptions {
            envs: self.s3.env_vars(),
            config: Some(config),
            ..ServerOptions::default()
        }
    }
}

/// Each partition's `wal_start_offset` of [`STREAM`] (which has
/// [`PARTITIONS`] partitions), and the status.
async fn wal_starts(client: &reqwest::Client, server: &Server) -> (Vec<u64>, Value) {
    let (starts, st) = support::wal_starts(client, server, STREAM).await;
    assert_eq!(starts.len(), PARTITIONS as usize, "{st}");
    (starts, st)
}

/// Waits (bounded) while the load runs until the WAL was trimmed past
/// `gone` (the object holding the stream's creation, or an older
/// checkpoint), a checkpoint newer than `older_than` exists, and every
/// partition's WAL starts above `wal_above`. Returns the newest checkpoint
/// key and the WAL start offsets.
async fn wait_trimmed(
    client: &reqwest::Client,
    server: &Server,
    store: &Bucket,
    gone: &str,
    older_than: Option<&str>,
    wal_above: &[u64],
) -> (String, Vec<u64>) {
    let started = Instant::now();
    loop {
        let checkpoints = store.keys("wal/checkpoints/").await;
        let objects = store.keys("wal/objects/").await;
        let (starts, st) = wal_starts(client, server).await;
        let newest = checkpoints.last().cloned();
        let new_checkpoint = newest.as_deref().is_some_and(|c| older_than.is_none_or(|old| c > old));
        let gone_now = !objects.iter().any(|k| k == gone) && !checkpoints.iter().any(|k| k == gone);
        let wal_moved = starts.iter().zip(wal_above).all(|(s, above)| s > above);
        if new_checkpoint && gone_now && wal_moved {
            return (newest.expect("a checkpoint"), starts);
        }
        if started.elapsed() > TRIM_TIMEOUT {
            panic!(
                "the WAL was not trimmed within {TRIM_TIMEOUT:?} (checkpoint newer than {older_than:?}: \
                 {new_checkpoint}, {gone} deleted: {gone_now}, every wal_start_offset above {wal_above:?}: \
                 {wal_moved}); checkpoints {checkpoints:?}, {} WAL objects from {:?}; status {st}\n{}",
                objects.len(),
                objects.first(),
                server.log_tail(60)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// SIGKILL, then delete the whole data dir and start again on the same
/// bucket and prefix.
async fn kill_wipe_restart(server: &mut Server) -> Duration {
    server.kill();
    let dir = server.data_dir().to_path_buf();
    std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("remove {}: {e}", dir.display()));
    assert!(!dir.exists(), "{} still exists", dir.display());
    let t = Instant::now();
    server.restart().await;
    t.elapsed()
}

/// Produces 3 records to every partition one request at a time (as producer
/// `p` for partition `p`, so the ledger's per-producer order holds), checks
/// they land right at the end, and records them in the ledger.
async fn produce_at_end(client: &reqwest::Client, server: &Server, ledger: &mut Ledger, round: u32) {
    for p in 0..PARTITIONS {
        let producer = p as usize;
        let first = ledger.next_seq[producer];
        let seqs: Vec<u64> = (first..first + 3).collect();
        ledger.next_seq[producer] += 3;
        let body: Vec<Value> = seqs
            .iter()
            .map(|&seq| {
                json!({
                    "key": workload::key_of(producer),
                    "value": workload::value_of(producer, seq),
                    "headers": {"round": round.to_string()},
                })
            })
            .collect();
        let offsets = support::produce(client, server, STREAM, p, &Value::Array(body)).await;
        let end = ledger.observed[p as usize].len() as u64;
        assert_eq!(
            offsets,
            vec![end, end + 1, end + 2],
            "partition {p}: offsets after the restart"
        );
        for (seq, offset) in seqs.into_iter().zip(offsets) {
            let sent = Sent {
                producer,
                seq,
                partition: p,
                round,
                acked: Some(offset),
            };
            assert!(ledger.sent.insert(workload::value_of(producer, seq), sent).is_none());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn object_wal_sigkill_and_empty_data_dir_keep_every_acknowledged_record_on_moto() {
    let test = "object_wal_sigkill_and_empty_data_dir_keep_every_acknowledged_record_on_moto";
    // Skips (with a note) only outside CI; under CI a missing moto fails.
    let Some(s3) = moto::server_or_skip(test) else {
        return;
    };
    let started = Instant::now();
    let (mut rng, seed) = Rng::from_env_or_time();
    let store = Bucket {
        s3,
        bucket: s3.unique_bucket("e2e-object-wal"),
        prefix: "cluster-a/node-1".to_string(),
    };
    println!(
        "{test}: store {}, seed {seed} (replay with SLUICE_E2E_SEED={seed})",
        store.url()
    );
    let client = support::client();

    let mut server = Server::start_with(store.options()).await;
    support::create_stream(&client, &server, STREAM, PARTITIONS).await;
    // The creation is acknowledged, so it is in a WAL object by now.
    let first_objects = store.keys("wal/objects/").await;
    let creation = first_objects
        .first()
        .unwrap_or_else(|| panic!("no WAL object after creating a stream\n{}", server.log_tail(40)))
        .clone();
    assert!(
        creation.ends_with(".obj"),
        "WAL object key {creation:?} is not wal/objects/<lsn>-<epoch>.obj"
    );
    assert!(
        store.keys("wal/epochs/").await.iter().any(|k| k.ends_with(".claim")),
        "no epoch claim under wal/epochs/"
    );

    // Cycle 1: load until the WAL was trimmed past the stream's creation
    // (only the checkpoint has it now), then SIGKILL mid-load.
    let mut ledger = Ledger::new(PRODUCERS, PARTITIONS);
    let load = Load::start(&server, STREAM, PARTITIONS, &ledger, 0, rng.next_u64());
    tokio::time::sleep(Duration::from_millis(rng.range(2000, 3000))).await;
    let (checkpoint, starts) = wait_trimmed(&client, &server, &store, &creation, None, &[0; PARTITIONS as usize]).await;
    tokio::time::sleep(Duration::from_millis(rng.range(100, 400))).await;
    let local = support::files_with_extension(server.data_dir(), "wal");
    assert!(
        local.is_empty(),
        "an object-WAL node wrote WAL segment files: {local:?}"
    );
    // The object WAL's own series, scraped under load.
    let text = crate::metrics::scrape(&client, &server).await;
    for name in [
        "sluice_wal_object_upload_seconds_count",
        "sluice_wal_ack_seconds_count",
        "sluice_wal_object_bytes_total",
    ] {
        let v = crate::metrics::sample(&text, name, &[]);
        assert!(v.is_some_and(|v| v > 0.0), "{name} should be > 0, is {v:?}");
    }
    assert_eq!(crate::metrics::sample(&text, "sluice_wal_fenced", &[]), Some(0.0));
    assert!(crate::metrics::sample(&text, "sluice_wal_objects_in_flight", &[]).is_some());
    load.mark_stopping();
    server.kill();
    let (acked, maybe, requests) = load.finish(&mut ledger).await;
    println!(
        "cycle 1 ({:?}): trimmed (checkpoint {checkpoint}, wal_start_offset {starts:?}); SIGKILL: \
         {requests} acked requests, {acked} acked records, {maybe} unacked",
        started.elapsed()
    );
    assert!(acked >= 100, "too little load to mean anything: {acked} acked records");

    let took = kill_wipe_restart(&mut server).await;
    let stats = workload::check(&server, STREAM, PARTITIONS, &mut ledger).await;
    assert_eq!(stats.acked_present, ledger.acked());
    println!(
        "cycle 1: restarted on an empty data dir in {took:?}: {} records, all {} acked present, \
         {} unacked present, {} absent",
        stats.records,
        ledger.acked(),
        stats.maybe_present,
        stats.maybe_absent
    );

    // The recovered node appends at the end, and what it acknowledges reads back.
    produce_at_end(&client, &server, &mut ledger, 1).await;
    workload::check(&server, STREAM, PARTITIONS, &mut ledger).await;

    // Cycle 2: the recovered node (a new epoch) trims again and writes a
    // newer checkpoint; SIGKILL mid-load, empty data dir again.
    let load = Load::start(&server, STREAM, PARTITIONS, &ledger, 2, rng.next_u64());
    tokio::time::sleep(Duration::from_millis(rng.range(1500, 2500))).await;
    let (checkpoint2, starts2) = wait_trimmed(&client, &server, &store, &checkpoint, Some(&checkpoint), &starts).await;
    tokio::time::sleep(Duration::from_millis(rng.range(100, 400))).await;
    let local = support::files_with_extension(server.data_dir(), "wal");
    assert!(
        local.is_empty(),
        "an object-WAL node wrote WAL segment files: {local:?}"
    );
    load.mark_stopping();
    server.kill();
    let (acked, maybe, requests) = load.finish(&mut ledger).await;
    println!(
        "cycle 2 ({:?}): trimmed again (checkpoint {checkpoint2}, wal_start_offset {starts2:?}); SIGKILL: \
         {requests} acked requests, {acked} acked records, {maybe} unacked",
        started.elapsed()
    );
    assert!(acked > 0, "no load in cycle 2");

    let took = kill_wipe_restart(&mut server).await;
    let stats = workload::check(&server, STREAM, PARTITIONS, &mut ledger).await;
    assert_eq!(stats.acked_present, ledger.acked());
    println!(
        "cycle 2: restarted on an empty data dir in {took:?}: {} records, all {} acked present, \
         {} unacked present, {} absent",
        stats.records,
        ledger.acked(),
        stats.maybe_present,
        stats.maybe_absent
    );
    produce_at_end(&client, &server, &mut ledger, 3).await;
    let stats = workload::check(&server, STREAM, PARTITIONS, &mut ledger).await;
    assert_eq!(stats.acked_present, ledger.acked());
    let local = support::files_with_extension(server.data_dir(), "wal");
    assert!(
        local.is_empty(),
        "an object-WAL node wrote WAL segment files: {local:?}"
    );
    println!(
        "{test}: done in {:?}: {} acked records all present at their offsets, {} records stored",
        started.elapsed(),
        ledger.acked(),
        stats.records
    );
}
