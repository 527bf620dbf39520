//! Concurrent producers that remember what the server acknowledged, and a
//! checker that reads everything back and compares it with that ledger.
//!
//! Used by the crash test (SIGKILL mid-load) and the graceful-shutdown test
//! (SIGTERM mid-load). A producer sends one batch at a time and stops at the
//! first request that fails: once the server is being stopped, every later
//! request would fail too. Batches that failed are never retried; their
//! records are "maybe" records (they may or may not have been written).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::support::{self, Rng, Server};

/// Value of a record: unique over the whole test.
pub fn value_of(producer: usize, seq: u64) -> String {
    format!("p{producer}-s{seq}")
}

/// Key of every record of a producer.
pub fn key_of(producer: usize) -> String {
    format!("p{producer}")
}

/// What the test knows about one record it tried to write.
#[derive(Debug, Clone)]
pub struct Sent {
    pub producer: usize,
    pub seq: u64,
    pub partition: u32,
    /// The `round` header: which load round sent it.
    pub round: u32,
    /// The offset the server acknowledged, or `None` for a maybe record.
    pub acked: Option<u64>,
}

/// Everything ever sent, by value.
#[derive(Debug, Default)]
pub struct Ledger {
    pub sent: HashMap<String, Sent>,
    /// Next sequence number of each producer.
    pub next_seq: Vec<u64>,
    /// What each partition held at the last check, by offset: a record once
    /// read must stay at its offset forever (across later restarts).
    pub observed: Vec<Vec<String>>,
}

impl Ledger {
    pub fn new(producers: usize, partitions: u32) -> Ledger {
        Ledger {
            sent: HashMap::new(),
            next_seq: vec![0; producers],
            observed: vec![Vec::new(); partitions as usize],
        }
    }

    pub fn acked(&self) -> usize {
        self.sent.values().filter(|s| s.acked.is_some()).count()
    }

    pub fn maybe(&self) -> usize {
        self.sent.values().filter(|s| s.acked.is_none()).count()
    }
}

/// Result of one producer task in one round.
#[derive(Debug)]
pub struct ProducerRun {
    pub producer: usize,
    pub next_seq: u64,
    pub sent: Vec<(String, Sent)>,
    pub acked_requests: usize,
    /// Problems no stop of the server can explain (a request failing before
    /// the stop began, a malformed ack); each one fails the test.
    pub anomalies: Vec<String>,
}

/// A round of concurrent load against one server process.
pub struct Load {
    pub stopping: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<ProducerRun>>,
    started: Instant,
}

impl Load {
    /// Starts `producers` tasks; producer `i` writes to partition `i % partitions`.
    pub fn start(server: &Server, stream: &str, partitions: u32, ledger: &Ledger, round: u32, seed: u64) -> Load {
        let stopping = Arc::new(AtomicBool::new(false));
        let tasks = (0..ledger.next_seq.len())
            .map(|producer| {
                let url = support::records_url(server, stream, producer as u32 % partitions);
                let ctx = ProducerCtx {
                    producer,
                    partition: producer as u32 % partitions,
                    round,
                    url,
                    first_seq: ledger.next_seq[producer],
                    stopping: stopping.clone(),
                    rng: Rng::new(seed ^ ((producer as u64 + 1) << 32) ^ round as u64),
                };
                tokio::spawn(run_producer(ctx))
            })
            .collect();
        Load {
            stopping,
            tasks,
            started: Instant::now(),
        }
    }

    /// Call right before the server is stopped: failures after this are expected.
    pub fn mark_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Waits (bounded) for every producer to hit the stopped server, and adds
    /// what they sent to the ledger. Returns (acked records, maybe records, acked requests).
    pub async fn finish(self, ledger: &mut Ledger) -> (usize, usize, usize) {
        assert!(self.stopping.load(Ordering::SeqCst), "finish() before mark_stopping()");
        let mut acked = 0;
        let mut maybe = 0;
        let mut requests = 0;
        let mut anomalies = Vec::new();
        for task in self.tasks {
            let run = tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("a producer did not stop within 30 s of the server stopping")
                .expect("producer task panicked");
            ledger.next_seq[run.producer] = run.next_seq;
            requests += run.acked_requests;
            anomalies.extend(run.anomalies);
            for (value, sent) in run.sent {
                if sent.acked.is_some() {
                    acked += 1;
                } else {
                    maybe += 1;
                }
                assert!(
                    ledger.sent.insert(value.clone(), sent).is_none(),
                    "value {value} sent twice"
                );
            }
        }
        assert!(
            anomalies.is_empty(),
            "{} producer anomalies after {:?} of load:\n{}",
            anomalies.len(),
            self.started.elapsed(),
            anomalies.join("\n")
        );
        (acked, maybe, requests)
    }
}

struct ProducerCtx {
    producer: usize,
    partition: u32,
    round: u32,
    url: String,
    first_seq: u64,
    stopping: Arc<AtomicBool>,
    rng: Rng,
}

async fn run_producer(mut ctx: ProducerCtx) -> ProducerRun {
    let client = support::client();
    let mut run = ProducerRun {
        producer: ctx.producer,
        next_seq: ctx.first_seq,
        sent: Vec::new(),
        acked_requests: 0,
        anomalies: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if Instant::now() > deadline {
            run.anomalies
                .push(format!("producer {} was never stopped", ctx.producer));
            return run;
        }
        let n = ctx.rng.range(1, 5);
        let seqs: Vec<u64> = (run.next_seq..run.next_seq + n).collect();
        run.next_seq += n;
        let body: Vec<Value> = seqs
            .iter()
            .map(|&seq| {
                json!({
                    "key": key_of(ctx.producer),
                    "value": value_of(ctx.producer, seq),
                    "headers": {"round": ctx.round.to_string()},
                })
            })
            .collect();
        let outcome = match client.post(&ctx.url).json(&body).send().await {
            Err(e) => Err(format!("request error: {e}")),
            Ok(resp) => {
                let status = resp.status();
                match resp.bytes().await {
                    Err(e) => Err(format!("status {status}, body read error: {e}")),
                    Ok(b) if status != StatusCode::OK => {
                        Err(format!("status {status}: {}", String::from_utf8_lossy(&b)))
                    }
                    Ok(b) => match serde_json::from_slice::<Value>(&b) {
                        Err(e) => Err(format!("200 with a body that is not JSON ({e}): {b:?}")),
                        Ok(ack) => match support::check_ack(&ack, seqs.len()) {
                            Ok(offsets) => Ok(offsets),
                            Err(e) => {
                                // The server said 200 but the ack is wrong: a bug, not a crash.
                                run.anomalies.push(format!("producer {}: {e}", ctx.producer));
                                Err(e)
                            }
                        },
                    },
                }
            }
        };
        let offsets = outcome.as_ref().ok();
        for (i, &seq) in seqs.iter().enumerate() {
            let sent = Sent {
                producer: ctx.producer,
                seq,
                partition: ctx.partition,
                round: ctx.round,
                acked: offsets.map(|o| o[i]),
            };
            run.sent.push((value_of(ctx.producer, seq), sent));
        }
        match outcome {
            Ok(_) => run.acked_requests += 1,
            Err(e) => {
                if !ctx.stopping.load(Ordering::SeqCst) {
                    run.anomalies.push(format!(
                        "producer {}: request failed while the server was meant to be up: {e}",
                        ctx.producer
                    ));
                }
                return run;
            }
        }
    }
}

/// Counts from one check of the stored data against the ledger.
#[derive(Debug, Default, Clone, Copy)]
pub struct CheckStats {
    pub records: usize,
    pub acked_present: usize,
    pub maybe_present: usize,
    pub maybe_absent: usize,
}

/// Reads every partition of `stream` fully and checks it against the ledger:
/// - offsets are dense from 0, `start_offset` is 0, `end_offset` is the count;
/// - every record read is one the test sent (value, key and headers intact)
///   and sits in the partition it was sent to;
/// - no record appears twice;
/// - every acknowledged record is present, at exactly its acknowledged offset;
/// - within a producer, records appear in send order;
/// - everything read at an earlier check is still at the same offset.
pub async fn check(server: &Server, stream: &str, partitions: u32, ledger: &mut Ledger) -> CheckStats {
    let client = support::client();
    let mut problems: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut stats = CheckStats::default();

    let resp = client
        .get(server.url(&format!("/streams/{stream}")))
        .send()
        .await
        .expect("describe stream");
    let info = support::expect_json(resp, StatusCode::OK).await;
    let parts = info["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), partitions as usize, "partition count changed: {info}");

    for p in 0..partitions {
        let records = support::read_all(&client, server, stream, p, "").await;
        let end = parts[p as usize]["end_offset"].as_u64().expect("end_offset");
        if parts[p as usize]["start_offset"] != 0 {
            problems.push(format!("partition {p}: start_offset is not 0: {info}"));
        }
        if end != records.len() as u64 {
            problems.push(format!(
                "partition {p}: describe says end_offset {end} but {} records were read",
                records.len()
            ));
        }
        let mut values = Vec::with_capacity(records.len());
        let mut last_seq: HashMap<usize, u64> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            let at = format!("partition {p} offset {i}");
            if r["offset"] != i as u64 {
                problems.push(format!("{at}: offsets not dense from 0, found record {r}"));
            }
            let Some(value) = r["value"].as_str() else {
                problems.push(format!("{at}: value is not text: {r}"));
                values.push(String::new());
                continue;
            };
            values.push(value.to_string());
            let Some(sent) = ledger.sent.get(value) else {
                problems.push(format!("{at}: a record the test never sent: {r}"));
                continue;
            };
            if !seen.insert(value.to_string()) {
                problems.push(format!("{at}: record {value} appears more than once"));
            }
            if sent.partition != p {
                problems.push(format!("{at}: record {value} was sent to partition {}", sent.partition));
            }
            if r["key"] != key_of(sent.producer) {
                problems.push(format!("{at}: wrong key: {r}"));
            }
            if r["headers"] != json!({"round": sent.round.to_string()}) {
                problems.push(format!("{at}: wrong headers: {r}"));
            }
            if !r["timestamp"].is_u64() {
                problems.push(format!("{at}: no timestamp: {r}"));
            }
            match sent.acked {
                Some(o) if o != i as u64 => {
                    problems.push(format!("{at}: record {value} was acknowledged at offset {o}"));
                }
                Some(_) => stats.acked_present += 1,
                None => stats.maybe_present += 1,
            }
            if let Some(prev) = last_seq.insert(sent.producer, sent.seq)
                && prev >= sent.seq
            {
                problems.push(format!(
                    "{at}: record {value} comes after seq {prev} of the same producer"
                ));
            }
        }
        let before = &ledger.observed[p as usize];
        if values.len() < before.len() || values[..before.len()] != before[..] {
            let first_diff = before.iter().zip(&values).position(|(a, b)| a != b);
            problems.push(format!(
                "partition {p}: earlier contents changed (had {} records, now {}; first difference at {:?})",
                before.len(),
                values.len(),
                first_diff
            ));
        }
        stats.records += values.len();
        ledger.observed[p as usize] = values;
    }

    let mut lost: Vec<(&String, &Sent)> = ledger
        .sent
        .iter()
        .filter(|(v, s)| s.acked.is_some() && !seen.contains(*v))
        .collect();
    lost.sort_by_key(|(_, s)| (s.producer, s.seq));
    for (v, s) in &lost {
        problems.push(format!(
            "acknowledged record {v} (partition {}, offset {:?}, round {}) is missing",
            s.partition, s.acked, s.round
        ));
    }
    stats.maybe_absent = ledger.maybe() - stats.maybe_present;

    support::assert_no_problems(&problems, "in the stored data");
    stats
}
