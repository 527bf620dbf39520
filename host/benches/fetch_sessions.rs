//! Kafka fetch sessions: what a fetch of many idle partitions costs the
//! node, against the cheapest request on the same connection (ApiVersions:
//! a frame in, a frame out) measured in the same run.
//!
//! Run with `cargo bench -p sluice-host --bench fetch_sessions`
//! (`SLUICE_BENCH_QUICK=1` for a smoke run).
//!
//! A node in this process (defaults, local WAL) holds one topic of 1,000
//! partitions, each with one record. A raw Kafka client (the
//! kafka-protocol crate) on one connection, in a closed loop, sends Fetch
//! v12 from every partition's end with `max_wait_ms` 0, so nothing waits:
//!
//! - ApiVersions v3, the floor of any request;
//! - incremental fetches of a session of 1 and of 1,000 partitions where
//!   nothing changed (Kafka consumers at their ends send these all day);
//! - full fetches of 1,000 partitions without a session (epoch -1).
//!
//! - the 1,000-partition session again with `max_wait_ms` 2: each fetch
//!   reads, waits on every partition and reads again, as an idle
//!   consumer's long-poll does.
//!
//! Reported per request: wall and CPU microseconds (the whole process's,
//! client included; median of rounds), CPU as a multiple of ApiVersions',
//! and the CPU of one more partition in an idle session.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_host::{Host, Record, Settings};

#[path = "common/cpu.rs"]
mod cpu;
use cpu::process_cpu_seconds;

const TOPIC: &str = "idle";
const PARTITIONS: u32 = 1_000;
const FETCH_VERSION: i16 = 12;

struct Client {
    s: TcpStream,
    correlation: i32,
}

impl Client {
    fn call<Req: Encodable, Resp: Decodable>(&mut self, api: ApiKey, version: i16, req: &Req) -> anyhow::Result<Resp> {
        self.correlation += 1;
        let mut h = RequestHeader::default();
        h.request_api_key = api as i16;
        h.request_api_version = version;
        h.correlation_id = self.correlation;
        h.client_id = Some(StrBytes::from_static_str("bench"));
        let mut body = BytesMut::new();
        h.encode(&mut body, api.request_header_version(version))?;
        req.encode(&mut body, version)?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_u32(u32::try_from(body.len())?);
        frame.put_slice(&body);
        self.s.write_all(&frame)?;
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len)?;
        let mut answer = vec![0u8; u32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut answer)?;
        let mut a = Bytes::from(answer);
        anyhow::ensure!(a.get_i32() == self.correlation, "answer out of order");
        if api.response_header_version(version) >= 1 {
            a.get_u8(); // the flexible header's tagged fields
        }
        Resp::decode(&mut a, version)
    }

    fn api_versions(&mut self) -> anyhow::Result<()> {
        let r: ApiVersionsResponse = self.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())?;
        anyhow::ensure!(r.error_code == 0, "ApiVersions: error {}", r.error_code);
        Ok(())
    }

    /// One fetch, waiting at most `wait_ms` for records; `partitions` from
    /// their ends (offset 1), or none for an incremental fetch of the
    /// session. Returns (session id, partitions answered).
    fn fetch(&mut self, session: (i32, i32), partitions: u32, wait_ms: i32) -> anyhow::Result<(i32, usize)> {
        let mut req = FetchRequest::default();
        req.replica_id = BrokerId(-1);
        req.max_wait_ms = wait_ms;
        req.min_bytes = 1;
        req.max_bytes = 50 << 20;
        req.session_id = session.0;
        req.session_epoch = session.1;
        if partitions > 0 {
            let mut t = FetchTopic::default();
            t.topic = TopicName(StrBytes::from_static_str(TOPIC));
            t.partitions = (0..partitions)
                .map(|p| {
                    let mut fp = FetchPartition::default();
                    fp.partition = p as i32;
                    fp.fetch_offset = 1;
                    fp.current_leader_epoch = -1;
                    fp.partition_max_bytes = 1 << 20;
                    fp
                })
                .collect();
            req.topics.push(t);
        }
        let r: FetchResponse = self.call(ApiKey::Fetch, FETCH_VERSION, &req)?;
        anyhow::ensure!(r.error_code == 0, "Fetch: error {}", r.error_code);
        let answered: usize = r.responses.iter().map(|t| t.partitions.len()).sum();
        for t in &r.responses {
            for p in &t.partitions {
                anyhow::ensure!(
                    p.error_code == 0,
                    "partition {}: error {}",
                    p.partition_index,
                    p.error_code
                );
                anyhow::ensure!(p.records.as_ref().is_none_or(Bytes::is_empty), "records at the end?");
            }
        }
        Ok((r.session_id, answered))
    }
}

/// (wall, CPU) microseconds per call of `f`, over `n` calls.
fn per_call(n: u32, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<(f64, f64)> {
    let (started, cpu) = (Instant::now(), process_cpu_seconds());
    for _ in 0..n {
        f()?;
    }
    let per = |secs: f64| secs * 1e6 / f64::from(n);
    Ok((per(started.elapsed().as_secs_f64()), per(process_cpu_seconds() - cpu)))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

const KINDS: [&str; 5] = [
    "ApiVersions (the floor)",
    "incremental fetch, session of 1, idle",
    "incremental fetch, session of 1,000, idle",
    "the same, long-polled (max_wait_ms 2)",
    "full fetch of 1,000, no session",
];

/// (wall, CPU) microseconds per request of each kind, one round.
fn round(c: &mut Client, n: u32) -> anyhow::Result<Vec<(f64, f64)>> {
    let floor = per_call(n, || c.api_versions())?;
    let session = |c: &mut Client, partitions: u32, wait_ms: i32, n: u32| -> anyhow::Result<(f64, f64)> {
        let (id, answered) = c.fetch((0, 0), partitions, 0)?;
        anyhow::ensure!(id != 0 && answered == partitions as usize, "session not opened");
        let mut epoch = 0;
        let took = per_call(n, || {
            epoch += 1;
            let (_, answered) = c.fetch((id, epoch), 0, wait_ms)?;
            anyhow::ensure!(answered == 0, "an idle session answered {answered} partitions");
            Ok(())
        })?;
        c.fetch((id, -1), 0, 0)?; // close it
        Ok(took)
    };
    let one = session(c, 1, 0, n)?;
    let many = session(c, PARTITIONS, 0, n)?;
    let polled = session(c, PARTITIONS, 2, n.div_ceil(4))?;
    let full = per_call(n.div_ceil(4), || {
        let (_, answered) = c.fetch((0, -1), PARTITIONS, 0)?;
        anyhow::ensure!(answered == PARTITIONS as usize, "full fetch answered {answered}");
        Ok(())
    })?;
    Ok(vec![floor, one, many, polled, full])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::var("SLUICE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let (rounds, n) = if quick { (3, 200) } else { (7, 2_000) };
    let dir = tempfile::tempdir()?;
    let host = Host::open(Settings {
        data_dir: dir.path().into(),
        kafka_listen: None,
        ..Settings::default()
    })
    .await?;
    host.create_stream(TOPIC, PARTITIONS).await?;
    let one = [Record {
        value: Some(Bytes::from_static(b"x")),
        ..Record::default()
    }];
    for p in 0..PARTITIONS {
        host.append(TOPIC, p, &one).await?;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(sluice_host::kafka::serve(host.clone(), listener));

    let rows = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Vec<(f64, f64)>>> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        let mut c = Client { s, correlation: 0 };
        round(&mut c, n / 10)?; // warm-up
        (0..rounds).map(|_| round(&mut c, n)).collect()
    })
    .await??;
    let col = |i: usize| {
        let wall = median(rows.iter().map(|r| r[i].0).collect());
        let cpu = median(rows.iter().map(|r| r[i].1).collect());
        (wall, cpu)
    };
    println!(
        "fetch sessions: {PARTITIONS} idle partitions, one connection, closed loop, median of {rounds} rounds \
         (CPU: the whole process, client included)"
    );
    println!(
        "  {:<44} {:>10} {:>10} {:>14}",
        "request", "wall µs", "CPU µs", "CPU vs floor"
    );
    let floor = col(0).1;
    for (i, kind) in KINDS.iter().enumerate() {
        let (wall, cpu) = col(i);
        println!("  {kind:<44} {wall:>10.1} {cpu:>10.1} {:>13.2}×", cpu / floor);
    }
    println!(
        "  one more partition in an idle session: {:.3} µs of CPU per fetch",
        (col(2).1 - col(1).1) / f64::from(PARTITIONS - 1)
    );
    host.shutdown().await;
    Ok(())
}
