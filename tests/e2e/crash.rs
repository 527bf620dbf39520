//! Crash safety: SIGKILL the server while concurrent producers write, restart
//! it on the same data dir, repeat, and check that every acknowledged record
//! survived at its acknowledged offset and nothing was duplicated or reordered.
//! A second test also tears the WAL tail (junk written right after the last
//! entry after the crash, as a write cut short by a power loss would leave)
//! before each restart.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{self, Rng, Server};
use crate::workload::{self, Ledger, Load};

const STREAM: &str = "orders";
const PARTITIONS: u32 = 4;
const PRODUCERS: usize = 8;
const CYCLES: u32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_records_survive_repeated_sigkill() {
    let started = Instant::now();
    let (mut rng, seed) = Rng::from_env_or_time();
    println!("crash test seed {seed} (replay the timing with SLUICE_E2E_SEED={seed})");

    let mut server = Server::start().await;
    let client = support::client();
    support::create_stream(&client, &server, STREAM, PARTITIONS).await;

    let mut ledger = Ledger::new(PRODUCERS, PARTITIONS);
    for cycle in 0..CYCLES {
        let load = Load::start(&server, STREAM, PARTITIONS, &ledger, cycle, rng.next_u64());
        let delay = Duration::from_millis(rng.range(300, 900));
        tokio::time::sleep(delay).await;
        load.mark_stopping();
        server.kill();
        let (acked, maybe, requests) = load.finish(&mut ledger).await;

        if cycle % 2 == 1 {
            // Crash again while the server recovers, before it serves anything.
            let after = Duration::from_millis(rng.range(0, 60));
            server.start_and_kill_after(after).await;
            println!("cycle {cycle}: also SIGKILLed {after:?} into the restart");
        }
        server.restart().await;
        let stats = workload::check(&server, STREAM, PARTITIONS, &mut ledger).await;
        println!(
            "cycle {cycle}: SIGKILL after {delay:?} of load: {requests} acked requests, {acked} acked records, \
             {maybe} unacked; after restart {} records stored, {} of all unacked records present, {} absent",
            stats.records, stats.maybe_present, stats.maybe_absent
        );
        assert!(
            acked > 0,
            "cycle {cycle}: no request was acknowledged in {delay:?} of load"
        );
    }

    // The restarted server keeps working: one more round, stopped by SIGKILL again.
    let load = Load::start(&server, STREAM, PARTITIONS, &ledger, CYCLES, rng.next_u64());
    tokio::time::sleep(Duration::from_millis(200)).await;
    load.mark_stopping();
    server.kill();
    load.finish(&mut ledger).await;
    server.restart().await;
    let stats = workload::check(&server, STREAM, PARTITIONS, &mut ledger).await;

    let acked = ledger.acked();
    println!(
        "crash test done in {:?}: {} cycles, {acked} acked records all present at their offsets; \
         {} unacked records: {} present (once), {} absent; {} records stored",
        started.elapsed(),
        CYCLES + 1,
        ledger.maybe(),
        stats.maybe_present,
        stats.maybe_absent,
        stats.records
    );
    assert_eq!(stats.acked_present, acked);
    assert!(
        acked >= 300,
        "too little load to mean anything: only {acked} acked records"
    );
}

/// The newest WAL segment (`<data>/wal/*.wal`, names sort by first LSN).
fn newest_segment(server: &Server) -> PathBuf {
    let dir = server.data_dir().join("wal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segments.sort();
    segments
        .pop()
        .unwrap_or_else(|| panic!("no *.wal segment in {}", dir.display()))
}

/// Where a WAL segment's entries end: after its 40-byte header, each entry
/// is its u32 LE length field plus 8 bytes; zeros (written ahead by the
/// WAL writer) or the end of the file end the walk.
fn entries_end(segment: &Path) -> u64 {
    let bytes = std::fs::read(segment).unwrap_or_else(|e| panic!("read {}: {e}", segment.display()));
    let mut pos = 40usize;
    while let Some(field) = bytes.get(pos..pos + 4) {
        let len = u32::from_le_bytes([field[0], field[1], field[2], field[3]]) as usize;
        if len == 0 || pos + 8 + len > bytes.len() {
            break;
        }
        pos += 8 + len;
    }
    pos as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn torn_wal_tail_after_a_crash_is_cut_and_acknowledged_records_kept() {
    let (mut rng, seed) = Rng::from_env_or_time();
    println!("torn tail test seed {seed}");
    let mut server = Server::start().await;
    let client = support::client();
    support::create_stream(&client, &server, "torn", 2).await;
    let mut ledger = Ledger::new(4, 2);

    let junk_kinds: [(&str, Vec<u8>); 3] = [
        ("4 KiB of zeros", vec![0u8; 4096]),
        ("61 random bytes", (0..61).map(|_| rng.next_u64() as u8).collect()),
        ("5000 random bytes", (0..5000).map(|_| rng.next_u64() as u8).collect()),
    ];
    for (round, (what, junk)) in junk_kinds.iter().enumerate() {
        let load = Load::start(&server, "torn", 2, &ledger, round as u32, rng.next_u64());
        tokio::time::sleep(Duration::from_millis(rng.range(200, 400))).await;
        load.mark_stopping();
        server.kill();
        let (acked, _, _) = load.finish(&mut ledger).await;

        let segment = newest_segment(&server);
        let clean_end = entries_end(&segment);
        let f = OpenOptions::new().write(true).open(&segment).expect("open segment");
        f.write_all_at(junk, clean_end)
            .expect("write junk after the last entry");
        drop(f);

        server.restart().await;
        let stats = workload::check(&server, "torn", 2, &mut ledger).await;
        // Nothing was written since the restart: recovery cut exactly the
        // junk (zeros after the last entry are the segment's clean end).
        assert_eq!(entries_end(&segment), clean_end, "{what}: entries after recovery");
        let bytes = std::fs::read(&segment).expect("read segment");
        assert!(
            bytes[clean_end as usize..].iter().all(|&b| b == 0),
            "{}: junk of a {what} tail left after recovery",
            segment.display()
        );
        println!(
            "round {round}: {acked} acked, then {what} appended to {}; after restart {} records, all acked present",
            segment.display(),
            stats.records
        );
        assert!(acked > 0, "no load in round {round}");
    }
    // Appends after the cut land where the junk was and survive another crash.
    let load = Load::start(&server, "torn", 2, &ledger, 99, rng.next_u64());
    tokio::time::sleep(Duration::from_millis(200)).await;
    load.mark_stopping();
    server.kill();
    load.finish(&mut ledger).await;
    server.restart().await;
    workload::check(&server, "torn", 2, &mut ledger).await;
}
