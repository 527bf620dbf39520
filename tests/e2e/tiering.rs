//! Tiering, black-box: a node with a big upload backlog is SIGKILLed, comes
//! back serving everything from the WAL at once, drains the backlog into the
//! object store in bounded chunks (trimming the WAL), serves the same records
//! from objects (cold reads), and survives another SIGKILL. Runs on the local
//! file store (`<data_dir>/objects`) and on S3 (moto). Also checks the shape
//! of `GET /streams/{name}/status` (in `tiering/status.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_test_artifacts::moto::{self, S3Server};

use crate::support::{self, Rng, Server, ServerOptions, expect_json};

const STREAM: &str = "tiered";
const PARTITIONS: u32 = 2;
const PRODUCERS_PER_PARTITION: usize = 2;
/// `upload_chunk_bytes` of every config here.
const CHUNK: u64 = 64 * 1024;
/// Acknowledged value bytes each partition gets before the first crash: the
/// WAL backlog (values plus framing) is then well over 10 chunks.
const VALUE_BYTES_PER_PARTITION: u64 = 800 * 1024;
/// Bound of every wait for the uploader.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    /// No `object_store` setting: a file store in `<data_dir>/objects`.
    File,
    /// `s3://<fresh bucket>/<prefix>` on moto.
    Moto,
}

/// Where the node under test puts its objects.
struct Store {
    /// The `object_store` setting, if any.
    url: Option<String>,
    /// Environment of the server process (the moto endpoint and keys).
    envs: Vec<(String, String)>,
    s3: Option<(&'static S3Server, String, String)>,
}

impl Store {
    /// `None` when the kind is not available here (moto outside CI).
    fn new(kind: StoreKind, test: &str) -> Option<Store> {
        match kind {
            StoreKind::File => Some(Store {
                url: None,
                envs: Vec::new(),
                s3: None,
            }),
            StoreKind::Moto => {
                // Skips (with a note) only outside CI; under CI a missing moto fails.
                let s3 = moto::server_or_skip(test)?;
                let bucket = s3.unique_bucket("e2e-tiering");
                let prefix = "cluster-a/node-1".to_string();
                Some(Store {
                    url: Some(format!("s3://{bucket}/{prefix}")),
                    envs: s3.env_vars(),
                    s3: Some((s3, bucket, prefix)),
                })
            }
        }
    }

    /// Server options with a config file; `eager` uploads everything at
    /// once, otherwise uploads are effectively off.
    fn options(&self, eager: bool) -> ServerOptions {
        let (min, interval) = if eager { ("1B", "0s") } else { ("1GiB", "1h") };
        let mut config = format!(
            "upload_chunk_bytes = \"64KiB\"\n\
             segment_bytes = \"256KiB\"\n\
             upload_min_bytes = \"{min}\"\n\
             upload_interval = \"{interval}\"\n"
        );
        if let Some(url) = &self.url {
            config.push_str(&format!("object_store = \"{url}\"\n"));
        }
        ServerOptions {
            envs: self.envs.clone(),
            config: Some(config),
            ..ServerOptions::default()
        }
    }

    /// Names of the segment objects (`*.seg`) in the store.
    fn segment_objects(&self, server: &Server) -> Vec<String> {
        match &self.s3 {
            None => support::files_with_extension(&server.data_dir().join("objects"), "seg"),
            Some((s3, bucket, prefix)) => s3
                .list_keys(bucket, &format!("{prefix}/"))
                .unwrap_or_else(|e| panic!("list s3://{bucket}/{prefix}/: {e}"))
                .into_iter()
                .filter(|k| k.ends_with(".seg"))
                .collect(),
        }
    }
}

/// One record as the test wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: Vec<u8>,
    value: Vec<u8>,
    headers: BTreeMap<String, Vec<u8>>,
    timestamp: u64,
}

/// The record producer `producer` writes as its `seq`th to `partition`:
/// 200–2000 bytes of text (with escapes and multi-byte characters) or of
/// binary, all derived from (partition, producer, seq).
fn make_record(partition: u32, producer: usize, seq: u64) -> Rec {
    let mut rng = Rng::new(0x7153_0000_0000 ^ ((partition as u64) << 40) ^ ((producer as u64) << 32) ^ seq);
    let len = rng.range(200, 2000) as usize;
    let mut value = format!("p{partition}-w{producer}-s{seq}:").into_bytes();
    if !seq.is_multiple_of(2) {
        value.push(0xff); // never valid UTF-8
        while value.len() < len {
            value.push(rng.next_u64() as u8);
        }
    } else {
        const PIECES: &[&str] = &[
            "a", "b", "c", "x", "y", "z", "Q", "0", "7", " ", "-", "\"", "\\", "\n", "\t", "\u{0}", "é", "→", "😀",
        ];
        let mut s = String::from_utf8(value).expect("prefix is text");
        while s.len() < len {
            s.push_str(PIECES[rng.range(0, PIECES.len() as u64 - 1) as usize]);
        }
        value = s.into_bytes();
    }
    let headers = BTreeMap::from([
        ("seq".to_string(), seq.to_string().into_bytes()),
        ("raw".to_string(), vec![0xfe, 0xff, partition as u8, producer as u8]),
    ]);
    Rec {
        key: format!("p{partition}-w{producer}").into_bytes(),
        value,
        headers,
        timestamp: 1_600_000_000_000 + seq * 10 + producer as u64,
    }
}

/// A byte field in the request: text when it is UTF-8 (except every third
/// record, sent as base64 anyway), `{"base64": ...}` otherwise.
fn bytes_json(b: &[u8], force_base64: bool) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) if !force_base64 => Value::String(s.to_string()),
        _ => json!({ "base64": STANDARD.encode(b) }),
    }
}

fn record_json(r: &Rec, seq: u64) -> Value {
    let b64 = seq.is_multiple_of(3);
    let headers: serde_json::Map<String, Value> =
        r.headers.iter().map(|(k, v)| (k.clone(), bytes_json(v, b64))).collect();
    json!({
        "key": bytes_json(&r.key, b64),
        "value": bytes_json(&r.value, b64),
        "headers": headers,
        "timestamp": r.timestamp,
    })
}

/// How byte fields must come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// Default: a string for UTF-8, `{"base64"}` otherwise.
    Auto,
    /// `encoding=base64`: always `{"base64"}`.
    Base64,
}

impl Encoding {
    fn query(self) -> &'static str {
        match self {
            Encoding::Auto => "",
            Encoding::Base64 => "&encoding=base64",
        }
    }
}

/// Decodes a byte field of an answer, checking its form; `Err` says why not.
fn field_bytes(v: &Value, want_bytes: &[u8], enc: Encoding) -> Result<Vec<u8>, String> {
    let text_ok = std::str::from_utf8(want_bytes).is_ok() && enc == Encoding::Auto;
    match v {
        Value::String(s) if text_ok => Ok(s.as_bytes().to_vec()),
        Value::Object(o) if !text_ok && o.len() == 1 => {
            let b = o
                .get("base64")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("not {{\"base64\": ...}}: {v}"))?;
            STANDARD.decode(b).map_err(|e| format!("bad base64 ({e}): {v}"))
        }
        _ => Err(format!(
            "wrong form for {enc:?} (want {}): {v:.200}",
            if text_ok { "a string" } else { "{\"base64\": ...}" }
        )),
    }
}

/// Compares what a partition read returned with what was acknowledged.
fn compare(records: &[Value], want: &BTreeMap<u64, Rec>, enc: Encoding, problems: &mut Vec<String>, ctx: &str) {
    if records.len() != want.len() {
        problems.push(format!(
            "{ctx}: read {} records, {} were acknowledged",
            records.len(),
            want.len()
        ));
    }
    for (i, r) in records.iter().enumerate() {
        let at = format!("{ctx} offset {i}");
        if r["offset"] != i as u64 {
            problems.push(format!("{at}: offsets not dense from 0: {:.200}", r.to_string()));
            continue;
        }
        let Some(w) = want.get(&(i as u64)) else {
            problems.push(format!("{at}: a record nobody acknowledged: {:.200}", r.to_string()));
            continue;
        };
        if r["timestamp"] != w.timestamp {
            problems.push(format!("{at}: timestamp {} want {}", r["timestamp"], w.timestamp));
        }
        for (name, got, want) in [("key", &r["key"], &w.key), ("value", &r["value"], &w.value)] {
            match field_bytes(got, want, enc) {
                Ok(b) if &b == want => {}
                Ok(b) => problems.push(format!(
                    "{at}: {name} differs: {} bytes {:?}… want {} bytes {:?}…",
                    b.len(),
                    String::from_utf8_lossy(&b[..b.len().min(40)]),
                    want.len(),
                    String::from_utf8_lossy(&want[..want.len().min(40)])
                )),
                Err(e) => problems.push(format!("{at}: {name}: {e}")),
            }
        }
        let Some(headers) = r["headers"].as_object() else {
            problems.push(format!("{at}: headers is not an object: {}", r["headers"]));
            continue;
        };
        let names: BTreeSet<&String> = headers.keys().collect();
        if names != w.headers.keys().collect() {
            problems.push(format!("{at}: header names {names:?} want {:?}", w.headers.keys()));
            continue;
        }
        for (name, want) in &w.headers {
            match field_bytes(&headers[name], want, enc) {
                Ok(b) if &b == want => {}
                Ok(b) => problems.push(format!("{at}: header {name} is {b:?}, want {want:?}")),
                Err(e) => problems.push(format!("{at}: header {name}: {e}")),
            }
        }
    }
}

/// Reads every partition from offset 0 and compares it with the ledger.
async fn check_all(server: &Server, ledger: &[BTreeMap<u64, Rec>], enc: Encoding, ctx: &str) {
    let client = support::client();
    let mut problems = Vec::new();
    for (p, want) in ledger.iter().enumerate() {
        let records = support::read_all(&client, server, STREAM, p as u32, enc.query()).await;
        compare(&records, want, enc, &mut problems, &format!("{ctx}: partition {p}"));
    }
    if !problems.is_empty() {
        eprintln!("{}", server.log_tail(40));
    }
    support::assert_no_problems(&problems, ctx);
}

/// `GET /streams/{STREAM}/status`, checked for the stream's name and
/// partition count.
async fn status(client: &reqwest::Client, server: &Server) -> Value {
    let resp = client
        .get(server.url(&format!("/streams/{STREAM}/status")))
        .send()
        .await
        .expect("GET status");
    let st = expect_json(resp, StatusCode::OK).await;
    assert_eq!(st["name"], STREAM, "{st}");
    let parts = st["partitions"]
        .as_array()
        .unwrap_or_else(|| panic!("no partitions: {st}"));
    assert_eq!(parts.len(), PARTITIONS as usize, "{st}");
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p["partition"], i, "{st}");
    }
    st
}

/// A number field of a status partition (`"tier.segments"` for nested ones).
fn num(p: &Value, path: &str) -> u64 {
    let v = path.split('.').fold(p, |v, k| &v[k]);
    v.as_u64().unwrap_or_else(|| panic!("`{path}` is not a number in {p}"))
}

fn parts(st: &Value) -> &Vec<Value> {
    st["partitions"].as_array().expect("partitions")
}

/// Whether a partition is fully tiered and its WAL trimmed.
fn drained(p: &Value, end: u64) -> bool {
    num(p, "end_offset") == end
        && num(p, "upload_lag_records") == 0
        && num(p, "tier.tiered_end") == end
        && num(p, "wal_start_offset") > 0
        && num(p, "tier.segments") >= 10
        && p["tier"]["last_error"].is_null()
}

/// Polls the status (bounded) until `done` holds for every partition.
/// Prints every tiering error seen on the way. Returns the last status.
async fn wait_status(server: &Server, what: &str, done: impl Fn(usize, &Value) -> bool) -> Value {
    let client = support::client();
    let started = Instant::now();
    let mut errors = BTreeSet::new();
    loop {
        let st = status(&client, server).await;
        for p in parts(&st) {
            if let Some(e) = p["tier"]["last_error"].as_str()
                && errors.insert(e.to_string())
            {
                eprintln!(
                    "note: partition {}: tier.last_error {e:?} while waiting for {what}",
                    p["partition"]
                );
            }
        }
        if parts(&st).iter().enumerate().all(|(i, p)| done(i, p)) {
            return st;
        }
        if started.elapsed() > DRAIN_TIMEOUT {
            panic!(
                "{what}: not reached within {DRAIN_TIMEOUT:?}; last status {st:#}\n{}",
                server.log_tail(60)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Produces on `partition` as producer `producer` until the partition has
/// `VALUE_BYTES_PER_PARTITION` acknowledged value bytes (shared counter).
/// Every request must succeed. Returns (offset, record) of every ack.
async fn produce_until(
    url: String,
    partition: u32,
    producer: usize,
    bytes: Arc<AtomicU64>,
    seed: u64,
) -> Vec<(u64, Rec)> {
    let client = support::client();
    let mut rng = Rng::new(seed);
    let mut acked = Vec::new();
    let mut seq = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while bytes.load(Ordering::SeqCst) < VALUE_BYTES_PER_PARTITION {
        assert!(
            Instant::now() < deadline,
            "producer {producer} of partition {partition} did not finish in 120 s"
        );
        let n = rng.range(1, 8);
        let recs: Vec<(u64, Rec)> = (seq..seq + n)
            .map(|s| (s, make_record(partition, producer, s)))
            .collect();
        seq += n;
        let body: Vec<Value> = recs.iter().map(|(s, r)| record_json(r, *s)).collect();
        let resp = client
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("produce to partition {partition}: {e}"));
        let ack = expect_json(resp, StatusCode::OK).await;
        let offsets = support::check_ack(&ack, recs.len()).unwrap_or_else(|e| panic!("{e}"));
        let value_bytes: u64 = recs.iter().map(|(_, r)| r.value.len() as u64).sum();
        bytes.fetch_add(value_bytes, Ordering::SeqCst);
        acked.extend(offsets.into_iter().zip(recs.into_iter().map(|(_, r)| r)));
    }
    acked
}

async fn kill_9_with_a_backlog(kind: StoreKind, test: &str) {
    let Some(store) = Store::new(kind, test) else {
        return;
    };
    let started = Instant::now();
    let (mut rng, seed) = Rng::from_env_or_time();
    println!("{test}: store {kind:?} {:?}, seed {seed}", store.url);
    let client = support::client();

    // Phase 1: a backlog of many chunks, uploads off, then SIGKILL.
    let mut server = Server::start_with(store.options(false)).await;
    support::create_stream(&client, &server, STREAM, PARTITIONS).await;
    let mut tasks = Vec::new();
    for p in 0..PARTITIONS {
        let bytes = Arc::new(AtomicU64::new(0));
        for w in 0..PRODUCERS_PER_PARTITION {
            let url = support::records_url(&server, STREAM, p);
            tasks.push((p, tokio::spawn(produce_until(url, p, w, bytes.clone(), rng.next_u64()))));
        }
    }
    let mut ledger: Vec<BTreeMap<u64, Rec>> = vec![BTreeMap::new(); PARTITIONS as usize];
    for (p, task) in tasks {
        for (offset, rec) in task.await.expect("producer task") {
            assert!(
                ledger[p as usize].insert(offset, rec).is_none(),
                "partition {p}: offset {offset} acknowledged twice"
            );
        }
    }
    for (p, l) in ledger.iter().enumerate() {
        let n = l.len() as u64;
        assert_eq!(
            l.keys().copied().collect::<Vec<_>>(),
            (0..n).collect::<Vec<_>>(),
            "partition {p}: acked offsets are not 0..{n}"
        );
    }
    let st = status(&client, &server).await;
    for (i, p) in parts(&st).iter().enumerate() {
        let n = ledger[i].len() as u64;
        assert_eq!(num(p, "start_offset"), 0, "{st}");
        assert_eq!(num(p, "end_offset"), n, "{st}");
        assert_eq!(num(p, "wal_start_offset"), 0, "{st}");
        assert_eq!(num(p, "upload_lag_records"), n, "uploads are off: {st}");
        assert!(
            num(p, "upload_lag_bytes") > 10 * CHUNK,
            "backlog is not over 10 chunks: {st}"
        );
        assert_eq!(num(p, "tier.tiered_end"), 0, "uploads are off: {st}");
        assert_eq!(num(p, "tier.segments"), 0, "uploads are off: {st}");
    }
    let lag: Vec<u64> = parts(&st).iter().map(|p| num(p, "upload_lag_bytes")).collect();
    println!(
        "phase 1 ({:?}): {:?} records acknowledged, upload lag bytes {lag:?}; SIGKILL",
        started.elapsed(),
        ledger.iter().map(BTreeMap::len).collect::<Vec<_>>()
    );
    server.kill();

    // Phase 2: restart uploading eagerly. The WAL serves everything at once,
    // while (and after) the backlog drains.
    *server.options_mut() = store.options(true);
    server.restart().await;
    let phase2 = Instant::now();
    let before: Vec<u64> = parts(&status(&client, &server).await)
        .iter()
        .map(|p| num(p, "upload_lag_bytes"))
        .collect();
    check_all(&server, &ledger, Encoding::Auto, "right after the restart").await;
    let after: Vec<u64> = parts(&status(&client, &server).await)
        .iter()
        .map(|p| num(p, "upload_lag_bytes"))
        .collect();
    println!("phase 2: all records read after restart; upload lag bytes {before:?} before the read, {after:?} after");

    let ends: Vec<u64> = ledger.iter().map(|l| l.len() as u64).collect();
    let st = wait_status(&server, "the backlog drained", |i, p| drained(p, ends[i])).await;
    let mut epochs = Vec::new();
    let mut total_segments = 0;
    for p in parts(&st) {
        assert_eq!(num(p, "start_offset"), 0, "{st}");
        assert_eq!(num(p, "tier.tiered_start"), 0, "{st}");
        assert!(num(p, "tier.tiered_bytes") > 10 * CHUNK, "{st}");
        assert!(num(p, "tier.epoch") >= 1, "{st}");
        assert_eq!(p["tier"]["fenced"], false, "{st}");
        assert!(p["tier"]["last_upload_ms"].is_u64(), "{st}");
        assert_eq!(num(p, "upload_lag_bytes"), 0, "{st}");
        epochs.push(num(p, "tier.epoch"));
        total_segments += num(p, "tier.segments") as usize;
    }
    let objects = store.segment_objects(&server);
    assert!(
        objects.len() >= total_segments,
        "status names {total_segments} segments but the store holds {}: {objects:?}",
        objects.len()
    );
    if kind == StoreKind::Moto {
        let local = support::files_with_extension(&server.data_dir().join("objects"), "seg");
        assert!(local.is_empty(), "S3 node wrote local segments: {local:?}");
    }
    println!(
        "phase 2: drained in {:?}: {total_segments} segments ({} objects), status {}",
        phase2.elapsed(),
        objects.len(),
        compact_status(&st)
    );
    // Offsets below wal_start_offset are only in the object store now.
    check_all(&server, &ledger, Encoding::Base64, "after draining (cold reads)").await;

    // Phase 3: SIGKILL again; everything is still there and offsets go on.
    server.kill();
    server.restart().await;
    check_all(&server, &ledger, Encoding::Auto, "after the second SIGKILL").await;
    let st = status(&client, &server).await;
    for (i, p) in parts(&st).iter().enumerate() {
        assert_eq!(num(p, "start_offset"), 0, "{st}");
        assert_eq!(num(p, "end_offset"), ends[i], "{st}");
        assert_eq!(num(p, "upload_lag_records"), 0, "nothing new was written: {st}");
    }
    for p in 0..PARTITIONS {
        let recs: Vec<(u64, Rec)> = (1_000_000..1_000_003).map(|s| (s, make_record(p, 9, s))).collect();
        let body: Vec<Value> = recs.iter().map(|(s, r)| record_json(r, *s)).collect();
        let offsets = support::produce(&client, &server, STREAM, p, &Value::Array(body)).await;
        let end = ends[p as usize];
        assert_eq!(
            offsets,
            vec![end, end + 1, end + 2],
            "partition {p}: offsets after the restart"
        );
        for (o, (_, r)) in offsets.into_iter().zip(recs) {
            ledger[p as usize].insert(o, r);
        }
    }
    check_all(&server, &ledger, Encoding::Base64, "after producing again").await;
    let st = wait_status(&server, "the new records tiered", |i, p| {
        num(p, "tier.tiered_end") == ends[i] + 3
            && num(p, "upload_lag_records") == 0
            && p["tier"]["last_error"].is_null()
    })
    .await;
    for (i, p) in parts(&st).iter().enumerate() {
        assert!(
            num(p, "tier.epoch") > epochs[i],
            "partition {i}: a restarted node uploads under a new epoch (was {}): {st}",
            epochs[i]
        );
    }
    check_all(&server, &ledger, Encoding::Auto, "at the end").await;
    println!(
        "{test}: done in {:?}; final status {}",
        started.elapsed(),
        compact_status(&st)
    );
}

/// One line per partition with the interesting numbers.
fn compact_status(st: &Value) -> String {
    parts(st)
        .iter()
        .map(|p| {
            format!(
                "[p{} {}..{} wal_start {} lag {}r/{}B tiered {}..{} in {} segs {}B epoch {}]",
                p["partition"],
                p["start_offset"],
                p["end_offset"],
                p["wal_start_offset"],
                p["upload_lag_records"],
                p["upload_lag_bytes"],
                p["tier"]["tiered_start"],
                p["tier"]["tiered_end"],
                p["tier"]["segments"],
                p["tier"]["tiered_bytes"],
                p["tier"]["epoch"],
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_with_a_backlog_of_many_chunks_then_everything_is_readable_and_drains() {
    kill_9_with_a_backlog(
        StoreKind::File,
        "kill_9_with_a_backlog_of_many_chunks_then_everything_is_readable_and_drains",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_with_a_backlog_of_many_chunks_then_everything_is_readable_and_drains_on_moto() {
    kill_9_with_a_backlog(
        StoreKind::Moto,
        "kill_9_with_a_backlog_of_many_chunks_then_everything_is_readable_and_drains_on_moto",
    )
    .await;
}

mod status;
