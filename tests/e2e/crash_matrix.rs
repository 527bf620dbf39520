//! The crash matrix: one seeded, randomized harness, run against the real
//! binary in four configurations (rows). Each cycle runs concurrent
//! producers and admin requests (streams, plugin versions, a pipeline),
//! SIGKILLs the server at a random moment, sometimes again during recovery,
//! optionally wipes the data dir, restarts it and checks:
//! * every acknowledged record is present exactly once, at its offset, and
//!   everything read before stays where it was ([`workload::check`]);
//! * every acknowledged stream, plugin version and pipeline exists as
//!   created, every acknowledged delete stays done ([`World::check`]);
//! * the pipeline's output holds each input record at most once.
//!
//! The moments include the very start of a log: every episode (a fresh
//! data dir and store prefix) begins with a cycle that kills the server
//! while its first entries are being written (before the first upload of
//! an object WAL), and short cycles land before the first checkpoint.
//!
//! Rows: local WAL; local WAL with aggressive tiering (1 KiB chunks, so
//! verification reads cold data, and 64 KiB segments, so trimmed segments
//! are recycled and kills land in recycled files); object WAL on moto with the data dir
//! wiped before every restart; object WAL without wiping.
//!
//! `SLUICE_CRASH_CYCLES=N` sets the cycles per row (default 16, some 10 to
//! 30 seconds per row); `SLUICE_E2E_SEED=S` replays a run's decisions (the
//! seed is printed first; each row derives its own from it).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sluice_test_artifacts::moto::{self, S3Server};

use crate::crash_world::{self, Known, MAIN, OUT, Op, World};
use crate::support::{self, Rng, Server, ServerOptions};
use crate::workload::{self, Ledger, Load};

const PARTITIONS: u32 = 3;
const PRODUCERS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    Local,
    LocalTiered,
    ObjectWiped,
    ObjectKept,
}

impl Row {
    fn object(self) -> bool {
        matches!(self, Row::ObjectWiped | Row::ObjectKept)
    }

    /// Rows that tier eagerly: their checks must read offsets the WAL no
    /// longer holds.
    fn tiered(self) -> bool {
        matches!(self, Row::LocalTiered | Row::ObjectWiped)
    }

    /// The server's config on store prefix `prefix` of `s3`'s bucket.
    fn options(self, s3: Option<(&S3Server, &str)>, prefix: &str) -> ServerOptions {
        let eager = "upload_min_bytes = \"1B\"\nupload_interval = \"0s\"\n";
        let config = match (self, s3) {
            (Row::Local, _) => String::new(),
            (Row::LocalTiered, _) => format!("upload_chunk_bytes = \"1KiB\"\nsegment_bytes = \"64KiB\"\n{eager}"),
            (Row::ObjectWiped | Row::ObjectKept, Some((_, bucket))) => {
                let tiering = if self == Row::ObjectWiped {
                    format!("upload_chunk_bytes = \"4KiB\"\n{eager}")
                } else {
                    String::new()
                };
                format!(
                    "wal = \"object\"\nwal_object_interval = \"10ms\"\n\
                     object_store = \"s3://{bucket}/{prefix}\"\n{tiering}"
                )
            }
            (_, None) => unreachable!("object rows run with moto"),
        };
        ServerOptions {
            envs: s3.map(|(s, _)| s.env_vars()).unwrap_or_default(),
            config: Some(config),
            ..ServerOptions::default()
        }
    }
}

fn cycles() -> u32 {
    std::env::var("SLUICE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

/// What one row saw, for its closing line.
#[derive(Debug, Default)]
struct Tally {
    episodes: u32,
    kills: u32,
    recovery_kills: u32,
    wipes: u32,
    acked_records: usize,
    admin_acked: usize,
    admin_cut: usize,
    early_kills: u32,
    /// Checks that read offsets served only by the object store.
    cold_checks: u32,
    /// Kills that left a recycled file among the WAL's segments.
    recycled_kills: u32,
}

/// One configuration's test: the node, the model of what it acknowledged,
/// and the ledger of records.
struct Run {
    row: Row,
    s3: Option<(&'static S3Server, String)>,
    rng: Rng,
    server: Option<Server>,
    world: World,
    ledger: Ledger,
    tally: Tally,
}

impl Run {
    /// A fresh node: an empty data dir and, for object rows, a new prefix.
    async fn new_episode(&mut self) {
        if let Some(mut old) = self.server.take() {
            old.kill();
        }
        self.tally.episodes += 1;
        let prefix = format!("node-{}", self.tally.episodes);
        let s3 = self.s3.as_ref().map(|(s, b)| (*s, b.as_str()));
        self.server = Some(Server::start_with(self.row.options(s3, &prefix)).await);
        self.world = World::default();
        self.ledger = Ledger::new(PRODUCERS, PARTITIONS);
    }

    fn server(&mut self) -> &mut Server {
        self.server.as_mut().expect("a running episode")
    }

    /// One cycle: load and admin requests, SIGKILL, maybe a second kill
    /// during recovery, maybe a wipe, restart, check.
    async fn cycle(&mut self, cycle: u32, fresh: bool, last: bool) {
        let mut ops = Vec::new();
        if fresh {
            // The log's first entry, cut short or not by the kill below.
            ops.push(Op::CreateStream {
                name: MAIN.into(),
                partitions: PARTITIONS,
            });
        } else if !self.world.stream_exists(MAIN) {
            // Its creation was lost to a kill: make it before the load.
            let server = self.server.as_ref().expect("a running episode");
            support::create_stream(&support::client(), server, MAIN, PARTITIONS).await;
            self.world.streams.insert(MAIN.into(), (PARTITIONS, Known::Yes));
        }
        ops.extend(self.world.plan(&mut self.rng));
        let base = self.server().base();
        let admin = tokio::spawn(crash_world::run_ops(base, ops.clone()));
        let load_seed = self.rng.next_u64();
        let load = match (self.world.stream_exists(MAIN), self.server.as_ref()) {
            (true, Some(server)) => Some(Load::start(server, MAIN, PARTITIONS, &self.ledger, cycle, load_seed)),
            _ => None,
        };
        // The kill moment: within the first entries of a fresh log, a few
        // entries in, or mid-load.
        let delay = match (fresh, last, self.rng.range(0, 9)) {
            (true, _, _) | (_, false, 0 | 1) => Duration::from_millis(self.rng.range(0, 40)),
            (_, false, 2..=4) => Duration::from_millis(self.rng.range(40, 200)),
            _ => Duration::from_millis(self.rng.range(200, 700)),
        };
        if delay < Duration::from_millis(40) {
            self.tally.early_kills += 1;
        }
        tokio::time::sleep(delay).await;
        if let Some(l) = &load {
            l.mark_stopping();
        }
        self.server().kill();
        self.tally.kills += 1;
        if recycled_segment_live(self.server()) {
            self.tally.recycled_kills += 1;
        }
        let acked = match load {
            Some(l) => l.finish(&mut self.ledger).await.0,
            None => 0,
        };
        let done = tokio::time::timeout(Duration::from_secs(60), admin)
            .await
            .expect("admin requests did not stop within 60 s of the kill")
            .expect("admin task");
        for (op, ok) in &done {
            self.world.record(op, *ok);
        }
        let admin_acked = done.iter().filter(|(_, ok)| *ok).count();
        self.tally.acked_records += acked;
        self.tally.admin_acked += admin_acked;
        self.tally.admin_cut += ops.len() - admin_acked;

        let wipe = self.row == Row::ObjectWiped;
        let mut extra = String::new();
        if self.rng.range(0, 3) == 0 {
            self.wipe_if(wipe);
            let after = Duration::from_millis(self.rng.range(0, 80));
            self.server().start_and_kill_after(after).await;
            self.tally.recovery_kills += 1;
            extra = format!(", killed again {after:?} into recovery");
        }
        self.wipe_if(wipe);
        let restart = Instant::now();
        self.server().restart().await;
        let restart = restart.elapsed();
        let (records, out) = self.check().await;
        println!(
            "{:?} cycle {cycle}{}: SIGKILL after {delay:?}{extra}{}: {acked} acked records, \
             {admin_acked}/{} admin requests acked; restart {restart:?}; {records} records, {out} pipeline outputs",
            self.row,
            if fresh { " (fresh log)" } else { "" },
            if wipe { ", data dir wiped" } else { "" },
            ops.len(),
        );
    }

    fn wipe_if(&mut self, wipe: bool) {
        if wipe {
            let dir = self.server().data_dir().to_path_buf();
            if dir.exists() {
                std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("remove {}: {e}", dir.display()));
            }
            self.tally.wipes += 1;
        }
    }

    /// Checks the restarted node; returns (records in MAIN, pipeline outputs).
    async fn check(&mut self) -> (usize, usize) {
        let server = self.server.as_ref().expect("a running episode");
        let mut problems = Vec::new();
        self.world.check(server, &mut problems).await;
        support::assert_no_problems(&problems, &format!("{:?}: in the metadata", self.row));
        if !self.world.stream_exists(MAIN) {
            return (0, 0);
        }
        let stats = workload::check(server, MAIN, PARTITIONS, &mut self.ledger).await;
        if wal_start(server).await > 0 {
            self.tally.cold_checks += 1;
        }
        let mut outputs = 0;
        if self.world.stream_exists(OUT) {
            let values: HashSet<String> = self.ledger.observed.iter().flatten().cloned().collect();
            outputs = crash_world::check_pipeline_output(server, &values, &mut problems).await;
        }
        support::assert_no_problems(&problems, &format!("{:?}: in the pipeline output", self.row));
        (stats.records, outputs)
    }
}

async fn run_row(row: Row) {
    let test = format!("crash_matrix::{row:?}");
    let s3 = match row.object() {
        true => match moto::server_or_skip(&test) {
            Some(s3) => Some((s3, s3.unique_bucket("crash-matrix"))),
            None => return,
        },
        false => None,
    };
    let (_, seed) = Rng::from_env_or_time();
    let row_seed = seed ^ (row as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    println!(
        "{row:?}: seed {seed} (replay with SLUICE_E2E_SEED={seed}), {} cycles",
        cycles()
    );
    let mut run = Run {
        row,
        s3,
        rng: Rng::new(row_seed),
        server: None,
        world: World::default(),
        ledger: Ledger::new(PRODUCERS, PARTITIONS),
        tally: Tally::default(),
    };
    let started = Instant::now();
    let mut fresh = true;
    for cycle in 0..cycles() {
        if fresh {
            run.new_episode().await;
        }
        let last = cycle + 1 == cycles();
        run.cycle(cycle, fresh, last).await;
        // A new episode now and then (the start of a log is where the
        // boundary cases are), but the last cycle runs a full load.
        fresh = run.rng.range(0, 4) == 0 && cycle + 2 < cycles();
    }
    // Short episodes may not roll far enough to recycle a segment: a few
    // more full cycles (bounded) until a kill leaves one to recover.
    let mut more = 0;
    while row == Row::LocalTiered && run.tally.recycled_kills == 0 && more < 8 && cycles() >= 8 {
        run.cycle(cycles() + more, false, true).await;
        more += 1;
    }
    if row.tiered() && run.tally.cold_checks == 0 {
        // Tiering may not have caught up with a short run: wait (bounded)
        // for the WAL to be trimmed, then check once more, reading cold.
        let server = run.server.as_ref().expect("a running episode");
        let deadline = Instant::now() + Duration::from_secs(30);
        while wal_start(server).await == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        run.check().await;
    }
    let t = &run.tally;
    println!(
        "{row:?}: {} cycles in {:?}: {} episodes, {} kills ({} within 40 ms, {} during recovery), {} wipes; \
         {} acked records and {} acked admin requests all kept ({} cut short by a kill); \
         {} checks read tiered data; {} kills left recycled segments",
        cycles(),
        started.elapsed(),
        t.episodes,
        t.kills,
        t.early_kills,
        t.recovery_kills,
        t.wipes,
        t.acked_records,
        t.admin_acked,
        t.admin_cut,
        t.cold_checks,
        t.recycled_kills
    );
    assert!(
        row != Row::LocalTiered || t.recycled_kills > 0 || cycles() < 8,
        "{row:?}: no kill left a recycled segment to recover"
    );
    assert!(
        !row.tiered() || t.cold_checks > 0,
        "{row:?}: no check read tiered data (the WAL was never trimmed)"
    );
    assert!(
        t.acked_records > 0 || cycles() < 2,
        "{row:?}: no record was acknowledged in {} cycles",
        cycles()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_wal() {
    run_row(Row::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_wal_with_aggressive_tiering() {
    run_row(Row::LocalTiered).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn object_wal_wiped_before_every_restart() {
    run_row(Row::ObjectWiped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn object_wal_kept() {
    run_row(Row::ObjectKept).await;
}

/// Whether a live local WAL segment is a recycled file (header version 2,
/// docs/FORMATS.md).
fn recycled_segment_live(server: &Server) -> bool {
    let Ok(dir) = std::fs::read_dir(server.data_dir().join("wal")) else {
        return false;
    };
    dir.filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .filter_map(|p| std::fs::read(p).ok())
        .any(|b| b.get(8..12) == Some(&2u32.to_le_bytes()[..]))
}

/// The highest `wal_start_offset` of [`MAIN`]'s partitions: above 0, a
/// full read of it is served partly from the object store.
async fn wal_start(server: &Server) -> u64 {
    let (starts, _) = support::wal_starts(&support::client(), server, MAIN).await;
    starts.into_iter().max().unwrap_or(0)
}
