//! Exactly-once pipeline output across SIGKILL, against the real binary:
//! producers write to a 3-partition input while an `in -> upper -> out`
//! pipeline (tiny batches) copies it into a 2-partition output; the server is
//! SIGKILLed mid-load (and sometimes again during or right after recovery)
//! and restarted on the same data dir. After every restart the output must be
//! a prefix of the transformed input (per input partition, in order, no
//! duplicates); at the end, once the pipeline caught up, it must be all of it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_test_artifacts as wasm;
use tokio::task::JoinHandle;

use crate::plugin_api::*;
use crate::support::{self, Rng, Server};

const INPUT: &str = "in";
const OUTPUT: &str = "out";
const IN_PARTS: u32 = 3;
const OUT_PARTS: u32 = 2;
const PRODUCERS: usize = 6;
const CYCLES: u32 = 4;
const PIPELINE: &str = "shout";
const BATCH_RECORDS: u32 = 5;
/// How long the pipeline may take to catch up once the producers stopped.
const CATCH_UP: Duration = Duration::from_secs(30);

/// Value of a non-`drop` record: unique over the whole test.
fn value_of(cycle: u32, producer: usize, seq: u64) -> String {
    format!("r{cycle}-{producer}-{seq}")
}

/// The producer of an (upper-cased or not) value `r{cycle}-{producer}-{seq}`.
fn producer_of(value: &str) -> Option<usize> {
    let mut parts = value.strip_prefix(['r', 'R'])?.split('-');
    parts.next()?.parse::<u32>().ok()?;
    let producer = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    parts.next().is_none().then_some(producer)
}

fn input_partition_of(producer: usize) -> u32 {
    producer as u32 % IN_PARTS
}

struct ProducerRun {
    producer: usize,
    next_seq: u64,
    /// Values (not `drop`) the server acknowledged.
    acked: Vec<String>,
    acked_records: usize,
    /// Records of requests that failed (may or may not be stored).
    unacked_records: usize,
    anomalies: Vec<String>,
}

/// Sends batches of 1–5 records (about one in ten a literal `drop`, and now
/// and then a batch of exactly `BATCH_RECORDS` drops, which the pipeline
/// turns into no output at all) until told to stop or a request fails.
async fn run_producer(
    url: String,
    producer: usize,
    cycle: u32,
    first_seq: u64,
    stopping: Arc<AtomicBool>,
    mut rng: Rng,
) -> ProducerRun {
    let client = support::client();
    let mut run = ProducerRun {
        producer,
        next_seq: first_seq,
        acked: Vec::new(),
        acked_records: 0,
        unacked_records: 0,
        anomalies: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if stopping.load(Ordering::SeqCst) {
            return run;
        }
        if Instant::now() > deadline {
            run.anomalies.push(format!("producer {producer} was never stopped"));
            return run;
        }
        let all_drops = rng.range(0, 24) == 0;
        let n = if all_drops {
            BATCH_RECORDS as u64
        } else {
            rng.range(1, 5)
        };
        let mut batch = Vec::new();
        let mut sent_values = Vec::new();
        for _ in 0..n {
            let seq = run.next_seq;
            run.next_seq += 1;
            let value = if all_drops || rng.range(0, 9) == 0 {
                "drop".to_string()
            } else {
                let v = value_of(cycle, producer, seq);
                sent_values.push(v.clone());
                v
            };
            batch.push(json!({
                "key": format!("k{producer}"),
                "value": value,
                "headers": {"seq": seq.to_string(), "cycle": cycle.to_string()},
            }));
        }
        let outcome = match client.post(&url).json(&batch).send().await {
            Err(e) => Err(format!("request error: {e}")),
            Ok(resp) => {
                let status = resp.status();
                match resp.bytes().await {
                    Err(e) => Err(format!("status {status}, body read error: {e}")),
                    Ok(b) if status != StatusCode::OK => {
                        Err(format!("status {status}: {}", String::from_utf8_lossy(&b)))
                    }
                    Ok(b) => match serde_json::from_slice::<Value>(&b)
                        .map_err(|e| e.to_string())
                        .and_then(|ack| support::check_ack(&ack, batch.len()))
                    {
                        Ok(_) => Ok(()),
                        Err(e) => {
                            run.anomalies
                                .push(format!("producer {producer}: 200 with a bad ack: {e}"));
                            Err(e)
                        }
                    },
                }
            }
        };
        match outcome {
            Ok(()) => {
                run.acked_records += batch.len();
                run.acked.extend(sent_values);
            }
            Err(e) => {
                run.unacked_records += batch.len();
                if !stopping.load(Ordering::SeqCst) {
                    run.anomalies.push(format!(
                        "producer {producer}: request failed while the server was meant to be up: {e}"
                    ));
                }
                return run;
            }
        }
    }
}

/// One round of producers against one server process.
struct Load {
    stopping: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<ProducerRun>>,
}

impl Load {
    fn start(server: &Server, cycle: u32, next_seq: &[u64], rng: &mut Rng) -> Load {
        let stopping = Arc::new(AtomicBool::new(false));
        let tasks = (0..PRODUCERS)
            .map(|producer| {
                let url = support::records_url(server, INPUT, input_partition_of(producer));
                let rng = Rng::new(rng.next_u64());
                tokio::spawn(run_producer(
                    url,
                    producer,
                    cycle,
                    next_seq[producer],
                    stopping.clone(),
                    rng,
                ))
            })
            .collect();
        Load { stopping, tasks }
    }

    /// Call right before the server is stopped: failures after this are expected.
    fn mark_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Waits (bounded) for the producers; returns (acked records, unacked records).
    async fn finish(self, next_seq: &mut [u64], acked: &mut HashSet<String>) -> (usize, usize) {
        let (mut n_acked, mut n_unacked) = (0, 0);
        let mut anomalies = Vec::new();
        for task in self.tasks {
            let run = tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("a producer did not stop within 30 s")
                .expect("producer task panicked");
            next_seq[run.producer] = run.next_seq;
            n_acked += run.acked_records;
            n_unacked += run.unacked_records;
            anomalies.extend(run.anomalies);
            for v in run.acked {
                assert!(acked.insert(v.clone()), "value {v} acknowledged twice");
            }
        }
        assert!(anomalies.is_empty(), "producer anomalies:\n{}", anomalies.join("\n"));
        (n_acked, n_unacked)
    }
}

/// What a pipeline output record must look like, from its input record.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    value: String,
    key: Value,
    headers: Value,
    /// Where the input record is, for messages.
    input_offset: u64,
}

#[derive(Debug, Default)]
struct Counts {
    input: usize,
    drops: usize,
    output: usize,
}

/// Reads the pipeline's status, then all of `out`, then all of `in`, and
/// checks that for every input partition `i` the records of output partition
/// `i % OUT_PARTS` that came from `i` are, in order, exactly the upper-cased
/// non-`drop` records of `i` — all of them when `complete`, else a prefix
/// that covers at least everything up to the pipeline's durable position.
/// Also checks that every acknowledged value is in the input.
async fn check_output(server: &Server, when: &str, acked: &HashSet<String>, complete: bool) -> Counts {
    let client = support::client();
    let status = pipeline_status(&client, server, PIPELINE).await;
    let positions: Vec<u64> = status["partitions"]
        .as_array()
        .unwrap_or_else(|| panic!("{when}: status without partitions: {status}"))
        .iter()
        .map(|p| p["position"].as_u64().expect("position"))
        .collect();
    assert_eq!(positions.len(), IN_PARTS as usize, "{when}: {status}");

    let mut out = Vec::new();
    for p in 0..OUT_PARTS {
        out.push(support::read_all(&client, server, OUTPUT, p, "").await);
    }
    let mut input = Vec::new();
    for p in 0..IN_PARTS {
        input.push(support::read_all(&client, server, INPUT, p, "").await);
    }

    let mut problems: Vec<String> = Vec::new();
    let mut counts = Counts::default();
    // The transformed input, per input partition.
    let mut expected: Vec<Vec<Expected>> = vec![Vec::new(); IN_PARTS as usize];
    let mut in_values = HashSet::new();
    let mut drops_before_position = vec![0usize; IN_PARTS as usize];
    for (i, records) in input.iter().enumerate() {
        counts.input += records.len();
        for r in records {
            let offset = r["offset"].as_u64().expect("offset");
            let value = r["value"].as_str().expect("text value");
            if value == "drop" {
                counts.drops += 1;
                if offset < positions[i] {
                    drops_before_position[i] += 1;
                }
                continue;
            }
            match producer_of(value) {
                Some(k) if input_partition_of(k) == i as u32 => {}
                _ => problems.push(format!("{when}: in/{i} offset {offset}: unexpected record {r}")),
            }
            if !in_values.insert(value.to_string()) {
                problems.push(format!("{when}: in/{i} offset {offset}: value {value} stored twice"));
            }
            expected[i].push(Expected {
                value: value.to_ascii_uppercase(),
                key: r["key"].clone(),
                headers: r["headers"].clone(),
                input_offset: offset,
            });
        }
    }
    let mut missing_acked: Vec<&String> = acked.iter().filter(|v| !in_values.contains(*v)).collect();
    missing_acked.sort();
    for v in missing_acked.iter().take(20) {
        problems.push(format!("{when}: acknowledged value {v} is not in `{INPUT}`"));
    }

    // The output, split by the input partition each record came from.
    let mut got: Vec<Vec<(u32, u64, &Value)>> = vec![Vec::new(); IN_PARTS as usize];
    let mut out_values = HashMap::new();
    for (o, records) in out.iter().enumerate() {
        counts.output += records.len();
        for r in records {
            let offset = r["offset"].as_u64().expect("offset");
            let Some(value) = r["value"].as_str() else {
                problems.push(format!("{when}: out/{o} offset {offset}: value is not text: {r}"));
                continue;
            };
            if let Some((po, poff)) = out_values.insert(value.to_string(), (o, offset)) {
                problems.push(format!(
                    "{when}: DUPLICATE output {value}: out/{po} offset {poff} and out/{o} offset {offset}"
                ));
            }
            let Some(k) = producer_of(value).filter(|_| value.starts_with('R')) else {
                problems.push(format!("{when}: out/{o} offset {offset}: unexpected record {r}"));
                continue;
            };
            let i = input_partition_of(k);
            if i % OUT_PARTS != o as u32 {
                problems.push(format!(
                    "{when}: out/{o} offset {offset}: {value} comes from in/{i}, which maps to out/{}",
                    i % OUT_PARTS
                ));
                continue;
            }
            got[i as usize].push((o as u32, offset, r));
        }
    }

    for i in 0..IN_PARTS as usize {
        let want = &expected[i];
        let have = &got[i];
        let o = i as u32 % OUT_PARTS;
        let mut first_bad = None;
        for (n, (_, offset, r)) in have.iter().enumerate() {
            let Some(w) = want.get(n) else {
                first_bad = Some(format!(
                    "out/{o} offset {offset} ({}) is the output record #{n} of in/{i}, which has only {} non-drop records",
                    r["value"],
                    want.len()
                ));
                break;
            };
            if r["value"] != w.value.as_str() || r["key"] != w.key || r["headers"] != w.headers {
                first_bad = Some(format!(
                    "output record #{n} of in/{i} is out/{o} offset {offset} {r}, want the transform of in/{i} offset {} \
                     {w:?} (seen earlier in the output: {})",
                    w.input_offset,
                    have[..n].iter().any(|(_, _, e)| e["value"] == r["value"])
                ));
                break;
            }
        }
        if let Some(bad) = first_bad {
            problems.push(format!("{when}: order/exactly-once broken: {bad}"));
            continue;
        }
        let durable = positions[i] as usize - drops_before_position[i];
        if complete && have.len() != want.len() {
            let missing = &want[have.len().min(want.len())..];
            problems.push(format!(
                "{when}: in/{i} has {} non-drop records but only {} reached out/{o}; first missing: {:?}",
                want.len(),
                have.len(),
                missing.first()
            ));
        } else if have.len() < durable {
            problems.push(format!(
                "{when}: pipeline position of in/{i} is {} ({durable} non-drop records) but only {} are in out/{o}",
                positions[i],
                have.len()
            ));
        }
    }

    support::assert_no_problems(&problems, &format!("with pipeline status {status}"));
    counts
}

/// Polls the pipeline until it runs and has no lag on any input partition.
async fn wait_caught_up(server: &Server) -> Value {
    let client = support::client();
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let status = pipeline_status(&client, server, PIPELINE).await;
        assert_ne!(status["state"], "failed", "pipeline failed: {status}");
        let parts = status["partitions"].as_array().expect("partitions");
        if status["state"] == "running" && parts.len() == IN_PARTS as usize && parts.iter().all(|p| p["lag"] == 0) {
            assert!(status["error"].is_null(), "{status}");
            return status;
        }
        if Instant::now() >= deadline {
            panic!(
                "pipeline not caught up within {CATCH_UP:?}: {status}\n{}",
                server.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until the pipeline has processed input since the server
/// started (its `records_in` counter starts at 0 in every server process),
/// and returns how long that took.
async fn wait_processing(server: &Server) -> Duration {
    let client = support::client();
    let started = Instant::now();
    loop {
        let status = pipeline_status(&client, server, PIPELINE).await;
        assert_ne!(status["state"], "failed", "pipeline failed: {status}");
        if status["records_in"].as_u64().is_some_and(|n| n > 0) {
            return started.elapsed();
        }
        if started.elapsed() >= CATCH_UP {
            panic!(
                "the pipeline processed nothing within {CATCH_UP:?}: {status}\n{}",
                server.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn lags(status: &Value) -> Vec<u64> {
    status["partitions"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["lag"].as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipeline_output_is_exactly_once_across_sigkill() {
    let started = Instant::now();
    let (mut rng, seed) = Rng::from_env_or_time();
    println!("pipeline crash test seed {seed} (replay the timing with SLUICE_E2E_SEED={seed})");

    let mut server = Server::start().await;
    let client = support::client();
    upload(&client, &server, "upper", wasm::UPPER, 1).await;
    support::create_stream(&client, &server, INPUT, IN_PARTS).await;
    support::create_stream(&client, &server, OUTPUT, OUT_PARTS).await;
    let created = create_pipeline(
        &client,
        &server,
        &json!({
            "name": PIPELINE,
            "input": INPUT,
            "output": OUTPUT,
            "plugin": "upper",
            "batch_records": BATCH_RECORDS,
        }),
    )
    .await;
    assert_eq!(
        created["partitions"].as_array().map(Vec::len),
        Some(IN_PARTS as usize),
        "{created}"
    );

    let mut next_seq = vec![0u64; PRODUCERS];
    let mut acked = HashSet::new();
    let mut total_acked = 0;
    for cycle in 0..CYCLES {
        let load = Load::start(&server, cycle, &next_seq, &mut rng);
        // Crash while the pipeline is busy, not while it is still starting.
        let warm_up = wait_processing(&server).await;
        let delay = Duration::from_millis(rng.range(200, 700));
        tokio::time::sleep(delay).await;
        let before = pipeline_status(&client, &server, PIPELINE).await;
        load.mark_stopping();
        server.kill();
        let (n_acked, n_unacked) = load.finish(&mut next_seq, &mut acked).await;
        total_acked += n_acked;
        assert!(n_acked > 0, "cycle {cycle}: nothing acknowledged in {delay:?} of load");

        let extra = match cycle % 3 {
            1 => {
                // Crash again while the server recovers.
                let after = Duration::from_millis(rng.range(0, 80));
                server.start_and_kill_after(after).await;
                format!(", SIGKILLed again {after:?} into the restart")
            }
            2 => {
                // Crash again right after the restart, while the pipeline catches up.
                server.restart().await;
                let warm_up = wait_processing(&server).await;
                let after = Duration::from_millis(rng.range(0, 20));
                tokio::time::sleep(after).await;
                let lag = pipeline_status(&client, &server, PIPELINE).await;
                server.kill();
                format!(
                    ", SIGKILLed again {after:?} after the restarted pipeline began to catch up \
                     ({warm_up:?} after the restart; lag then {:?})",
                    lags(&lag)
                )
            }
            _ => String::new(),
        };
        server.restart().await;
        let counts = check_output(&server, &format!("after cycle {cycle}"), &acked, false).await;
        println!(
            "cycle {cycle}: SIGKILL {delay:?} after the pipeline began processing ({warm_up:?} into the load; \
             pipeline lag then {:?}): {n_acked} acked records, \
             {n_unacked} unacked{extra}; after restart: {} input records ({} drop), {} output records, prefix ok",
            lags(&before),
            counts.input,
            counts.drops,
            counts.output
        );
    }

    // A last round of load on the restarted server, stopped without a crash.
    let load = Load::start(&server, CYCLES, &next_seq, &mut rng);
    tokio::time::sleep(Duration::from_millis(300)).await;
    load.mark_stopping();
    let (n_acked, _) = load.finish(&mut next_seq, &mut acked).await;
    total_acked += n_acked;

    let caught_up = Instant::now();
    let status = wait_caught_up(&server).await;
    let catch_up = caught_up.elapsed();
    let counts = check_output(&server, "at the end", &acked, true).await;
    println!(
        "pipeline crash test done in {:?}: {CYCLES} SIGKILL cycles; {total_acked} acked input records; \
         {} input records stored ({} drop) -> {} output records, exactly once and in order; \
         caught up {catch_up:?} after the producers stopped; counters since the last start: in {} out {}",
        started.elapsed(),
        counts.input,
        counts.drops,
        counts.output,
        status["records_in"],
        status["records_out"]
    );
    assert_eq!(counts.output, counts.input - counts.drops);
    assert!(
        counts.input >= 300,
        "too little load to mean anything: only {} input records",
        counts.input
    );
}
