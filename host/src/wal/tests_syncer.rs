//! Groups synced on the sync thread while the writer writes the next: big
//! and small groups mixed keep their acknowledgements in LSN order, all of
//! them recover, and a failed sync there fails every later append, however
//! small (the writer, which syncs small groups itself, learns of it), with
//! nothing acknowledged after it.

use std::sync::{Arc, Mutex};

use super::tests_contract::{meta, payload};
use super::*;

/// Big enough that every group holding one is synced on the sync thread.
const BIG: usize = 600 * 1024;

/// What each completion saw, in the order completions ran: the LSN, or
/// `None` for a failed append.
type Outcomes = Arc<Mutex<Vec<Option<u64>>>>;

/// Appends entry `id` of `len` bytes, recording its outcome when it
/// completes; returns it to the caller too.
async fn append(wal: &Wal, id: u64, len: usize, outcomes: &Outcomes) -> Result<Appended, WalError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let outcomes = outcomes.clone();
    wal.reserve(len).await?.append(
        meta(id),
        payload(id, len),
        Box::new(move |r: Result<Appended, WalError>| {
            outcomes.lock().unwrap().push(r.as_ref().ok().map(|a| a.lsn));
            let _ = tx.send(r);
        }),
    );
    rx.await.map_err(|_| WalError::Closed)?
}

/// Entry ids per appender: big appenders are even, small ones odd.
fn size_of(appender: u64) -> usize {
    if appender.is_multiple_of(2) { BIG } else { 100 }
}

#[test]
fn big_and_small_groups_are_acknowledged_in_lsn_order_and_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let rt = super::tests_contract::rt_multi(4);
    let outcomes: Outcomes = Arc::default();
    let acked = rt.block_on(async {
        let (wal, _) = Wal::open(dir.path(), Options::default(), &mut |_| {}).unwrap();
        let wal = Arc::new(wal);
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let (wal, outcomes) = (wal.clone(), outcomes.clone());
            tasks.push(tokio::spawn(async move {
                let n = if size_of(t) == BIG { 8 } else { 60 };
                let mut mine = Vec::new();
                for i in 0..n {
                    let id = t * 1000 + i;
                    mine.push((id, append(&wal, id, size_of(t), &outcomes).await.unwrap()));
                }
                mine
            }));
        }
        let mut acked = Vec::new();
        for t in tasks {
            let mine = t.await.unwrap();
            assert!(mine.windows(2).all(|w| w[0].1.lsn < w[1].1.lsn));
            acked.extend(mine);
        }
        wal.shutdown().await;
        acked
    });
    let order = outcomes.lock().unwrap().clone();
    let total = acked.len() as u64;
    assert_eq!(
        order,
        (1..=total).map(Some).collect::<Vec<_>>(),
        "acknowledgements out of LSN order"
    );

    let mut seen = std::collections::BTreeMap::new();
    let (_, rec) = Wal::open(dir.path(), Options::default(), &mut |e| {
        seen.insert(e.lsn, (e.meta.base_offset, e.payload.len()));
    })
    .unwrap();
    assert!(rec.cut.is_none());
    assert_eq!(seen.len() as u64, total);
    for (id, a) in acked {
        assert_eq!(seen.get(&a.lsn), Some(&(id, size_of(id / 1000))), "entry {id}");
    }
}

#[test]
fn a_failed_sync_on_the_sync_thread_fails_every_later_append() {
    let dir = tempfile::tempdir().unwrap();
    let rt = super::tests_contract::rt_multi(4);
    let opts = Options::default();
    let faults = opts.faults.clone();
    let outcomes: Outcomes = Arc::default();
    let acked = rt.block_on(async {
        let (wal, _) = Wal::open(dir.path(), opts, &mut |_| {}).unwrap();
        let wal = Arc::new(wal);
        let mut tasks = Vec::new();
        for t in 0..6u64 {
            let (wal, outcomes) = (wal.clone(), outcomes.clone());
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in 0.. {
                    match append(&wal, t * 1000 + i, BIG, &outcomes).await {
                        Ok(a) => mine.push(a.lsn),
                        Err(WalError::Poisoned(_)) => return (mine, true),
                        Err(WalError::Io { op, .. }) => {
                            assert_eq!(op, "fdatasync segment");
                            return (mine, false);
                        }
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
                unreachable!()
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        faults.fail_syncs(true);
        let mut acked = Vec::new();
        for t in tasks {
            acked.extend(t.await.unwrap().0);
        }
        faults.fail_syncs(false);
        let err = append(&wal, 9999, BIG, &outcomes).await.unwrap_err();
        assert!(matches!(err, WalError::Poisoned(_)), "{err}");
        let err = append(&wal, 9998, 10, &outcomes).await.unwrap_err();
        assert!(matches!(err, WalError::Poisoned(_)), "{err}");
        assert!(wal.failure().is_some_and(|w| w.contains("fdatasync")));
        wal.shutdown().await;
        acked
    });
    let order = outcomes.lock().unwrap().clone();
    let first_failure = order.iter().position(Option::is_none).expect("some append failed");
    assert!(first_failure > 0, "the load ran before the failure");
    assert!(
        order[first_failure..].iter().all(Option::is_none),
        "an append was acknowledged after a failed one: {:?}",
        &order[first_failure..]
    );
    assert_eq!(
        order[..first_failure],
        (1..=first_failure as u64).map(Some).collect::<Vec<_>>()
    );

    // Every acknowledged entry recovers.
    let mut seen = std::collections::BTreeSet::new();
    let (_, rec) = Wal::open(dir.path(), Options::default(), &mut |e| {
        seen.insert(e.lsn);
    })
    .unwrap();
    assert!(rec.cut.is_none(), "{:?}", rec.cut);
    assert_eq!(acked.len(), first_failure);
    assert!(acked.iter().all(|l| seen.contains(l)));
}
