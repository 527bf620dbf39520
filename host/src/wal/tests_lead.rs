//! Producers committing in place (`leader.rs`): a lone producer on a
//! multi-thread runtime commits its own appends, with every rule of the
//! writer kept — LSNs dense and in queue order, completions in LSN order,
//! fail-stop — and nothing is left in the queue when producers, the writer
//! thread and trims mix.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::tests_contract::{meta, payload, rt};
use super::*;

fn multi_thread() -> tokio::runtime::Runtime {
    super::tests_contract::rt_multi(2)
}

/// Leading allowed whatever this machine's disk takes per sync.
fn opts() -> Options {
    Options {
        lead_sync_max: Duration::from_secs(10),
        ..Options::default()
    }
}

fn open(dir: &Path, opts: Options) -> (Wal, Vec<(u64, u64)>) {
    let mut seen = Vec::new();
    let (wal, _) = Wal::open(dir, opts, &mut |e| seen.push((e.lsn, e.meta.base_offset))).unwrap();
    (wal, seen)
}

#[test]
fn a_lone_producer_commits_its_appends_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), opts());
    let rt = multi_thread();
    let lsns: Vec<u64> = rt.block_on(async {
        let mut lsns = Vec::new();
        for i in 0..200 {
            lsns.push(wal.append(meta(i), payload(i, 1024)).await.unwrap().lsn);
        }
        lsns
    });
    assert_eq!(lsns, (FIRST_LSN..FIRST_LSN + 200).collect::<Vec<_>>());
    let led = wal.led();
    assert!(led >= 190, "only {led} of 200 appends committed in place");
    assert_eq!(wal.syncs(), 200, "one sync per append");
    rt.block_on(wal.shutdown());
    let (_wal, seen) = open(dir.path(), opts());
    assert_eq!(seen, (0..200).map(|i| (FIRST_LSN + i, i)).collect::<Vec<_>>());
}

/// Four producers: groups still take all of them (the writer thread waits
/// for the group's producers to come back), and the last one back commits
/// the group in place.
#[test]
fn the_last_producer_back_commits_the_group_in_place() {
    const PRODUCERS: u64 = 4;
    const EACH: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), opts());
    let wal = Arc::new(wal);
    let rt = multi_thread();
    let per_producer: Vec<Vec<u64>> = rt.block_on(async {
        let tasks: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let wal = wal.clone();
                tokio::spawn(async move {
                    let mut lsns = Vec::new();
                    for i in 0..EACH {
                        let id = p * EACH + i;
                        lsns.push(wal.append(meta(id), payload(id, 1024)).await.unwrap().lsn);
                    }
                    lsns
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let n = PRODUCERS * EACH;
    let mut all: Vec<u64> = per_producer.concat();
    all.sort_unstable();
    assert_eq!(all, (FIRST_LSN..FIRST_LSN + n).collect::<Vec<_>>());
    let (syncs, led) = (wal.syncs(), wal.led());
    let per_sync = n as f64 / syncs as f64;
    assert!(
        per_sync >= 2.0,
        "{per_sync:.2} appends per sync: groups no longer gather"
    );
    assert!(
        led * 10 >= syncs,
        "only {led} of {syncs} groups committed in place by a producer"
    );
    rt.block_on(wal.shutdown());
    let (_wal, seen) = open(dir.path(), opts());
    assert_eq!(seen.len() as u64, n);
}

#[test]
fn a_current_thread_runtime_or_a_slow_disk_never_leads() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), opts());
    rt().block_on(async {
        for i in 0..20 {
            wal.append(meta(i), payload(i, 64)).await.unwrap();
        }
    });
    assert_eq!(wal.led(), 0, "a current-thread runtime blocked by a sync");
    rt().block_on(wal.shutdown());

    let dir = tempfile::tempdir().unwrap();
    let off = Options {
        lead_sync_max: Duration::ZERO,
        ..Options::default()
    };
    let (wal, _) = open(dir.path(), off);
    let rt = multi_thread();
    rt.block_on(async {
        for i in 0..20 {
            wal.append(meta(i), payload(i, 64)).await.unwrap();
        }
    });
    assert_eq!(wal.led(), 0, "led although syncs count as slow");
    rt.block_on(wal.shutdown());
}

#[test]
fn a_failed_sync_in_place_fails_that_append_and_every_later_one() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts();
    let faults = o.faults.clone();
    let (wal, _) = open(dir.path(), o);
    let rt = multi_thread();
    rt.block_on(async {
        wal.append(meta(0), payload(0, 100)).await.unwrap();
        faults.fail_syncs(true);
        let failed = wal.append(meta(1), payload(1, 100)).await;
        assert!(matches!(failed, Err(WalError::Io { .. })), "{failed:?}");
        faults.fail_syncs(false);
        let later = wal.append(meta(2), payload(2, 100)).await;
        assert!(matches!(later, Err(WalError::Poisoned(_))), "{later:?}");
    });
    assert!(wal.led() >= 2, "the failing appends were not led");
    assert!(wal.failure().is_some());
    rt.block_on(wal.shutdown());
}

/// Producers that lead, producers that leave it to the writer, and trims,
/// all at once: every append completes, LSNs are dense, each producer's
/// are in its order, completions run in LSN order, and all recover.
#[test]
fn leaders_the_writer_thread_and_trims_mix_without_losing_an_append() {
    const PRODUCERS: u64 = 6;
    const EACH: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), opts());
    let wal = Arc::new(wal);
    let completed = Arc::new(Mutex::new(Vec::new()));
    let rt = multi_thread();
    let per_producer: Vec<Vec<u64>> = rt.block_on(async {
        let mut tasks = Vec::new();
        for p in 0..PRODUCERS {
            let (wal, completed) = (wal.clone(), completed.clone());
            tasks.push(tokio::spawn(async move {
                let mut lsns = Vec::new();
                for i in 0..EACH {
                    let id = p * EACH + i;
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let completed = completed.clone();
                    let done: Completion = Box::new(move |r: Result<Appended, WalError>| {
                        if let Ok(a) = &r {
                            completed.lock().unwrap().push(a.lsn);
                        }
                        let _ = tx.send(r);
                    });
                    let permit = wal.reserve(100).await.unwrap();
                    // Odd producers leave every append to the writer thread.
                    if p % 2 == 0 {
                        permit.append_led(meta(id), payload(id, 100), done).now();
                    } else {
                        permit.append(meta(id), payload(id, 100), done);
                    }
                    let appended = tokio::time::timeout(Duration::from_secs(20), rx)
                        .await
                        .expect("an append was never committed")
                        .unwrap()
                        .unwrap();
                    lsns.push(appended.lsn);
                    if i % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                lsns
            }));
        }
        let trims = {
            let wal = wal.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    wal.trim(0).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        trims.await.unwrap();
        out
    });
    for lsns in &per_producer {
        assert!(
            lsns.windows(2).all(|w| w[0] < w[1]),
            "a producer's appends out of order"
        );
    }
    let mut all: Vec<u64> = per_producer.concat();
    all.sort_unstable();
    let n = PRODUCERS * EACH;
    assert_eq!(all, (FIRST_LSN..FIRST_LSN + n).collect::<Vec<_>>());
    let completed = completed.lock().unwrap().clone();
    assert_eq!(
        completed,
        (FIRST_LSN..FIRST_LSN + n).collect::<Vec<_>>(),
        "completions out of LSN order"
    );
    assert!(wal.led() > 0, "no producer ever led");
    rt.block_on(wal.shutdown());
    let (_wal, seen) = open(dir.path(), opts());
    assert_eq!(seen.len() as u64, n);
    assert!(
        seen.iter()
            .enumerate()
            .all(|(i, (lsn, _))| *lsn == FIRST_LSN + i as u64)
    );
}

#[test]
fn appends_after_shutdown_fail_as_closed_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), opts());
    let rt = multi_thread();
    rt.block_on(async {
        wal.append(meta(0), payload(0, 10)).await.unwrap();
        wal.shutdown().await;
        let after = tokio::time::timeout(Duration::from_secs(10), wal.append(meta(1), payload(1, 10)))
            .await
            .expect("an append after shutdown waited forever");
        assert!(matches!(after, Err(WalError::Closed)), "{after:?}");
    });
}
