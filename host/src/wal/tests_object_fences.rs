//! Object-store WAL tests of writers taking over: a newer epoch fences the
//! old writer and keeps what it acknowledged, a slow opener that lost the
//! race cannot start late, and a fenced trim's point never reaches a header.
//! Events are ordered by holding calls at a [`Gate`], never by sleeping.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::object::prepare;
use super::object_format::object_key;
use super::tests_contract::{Seen, append_concurrently, expected, meta, open_object, open_prepared, payload};
use super::tests_object::{BOUND, arrived, faulty, opts, queue, size300, stored};
use super::*;
use crate::objstore::faults::Op;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_epoch_fences_the_old_writer_and_keeps_what_it_acknowledged() {
    let (_f, r) = faulty();
    let (a, _, _) = open_object(&r, opts()).await;
    assert_eq!(a.epoch(), Some(1));
    let a = Arc::new(a);
    let (first, _) = append_concurrently(&a, 0, 1, 10, size300).await;
    // A keeps appending from several tasks until it is refused.
    let oks: Arc<Mutex<BTreeMap<u64, u64>>> = Arc::new(Mutex::new(first.iter().map(|(i, x)| (x.lsn, *i)).collect()));
    let next_id = Arc::new(AtomicU64::new(100));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (a, oks, next_id) = (a.clone(), oks.clone(), next_id.clone());
        writers.push(tokio::spawn(async move {
            loop {
                let id = next_id.fetch_add(1, AtomicOrdering::Relaxed);
                match a.append(meta(id), payload(id, 300)).await {
                    Ok(x) => oks.lock().unwrap().insert(x.lsn, id),
                    Err(e) => return e,
                };
            }
        }));
    }
    // B takes over while A is busy: its claim fences A.
    for _ in 0..1000 {
        if oks.lock().unwrap().len() >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let prepared = prepare(&r).await.unwrap();
    assert_eq!(prepared.epoch(), 2);
    let (b, rec_b, seen_b) = open_prepared(prepared, opts()).await;
    for w in writers {
        let err = tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("the old writer was not fenced within 10 s")
            .unwrap();
        assert!(matches!(err, WalError::Fenced { epoch: 1, newer: 2 }), "{err}");
    }
    let err = a.append(meta(0), payload(0, 1)).await.unwrap_err();
    assert!(matches!(err, WalError::Fenced { .. }), "{err}");
    // Everything A acknowledged is in B's recovery, byte for byte.
    let oks = oks.lock().unwrap().clone();
    assert!(oks.len() >= 30, "A acknowledged only {} entries", oks.len());
    let by_lsn: BTreeMap<u64, &Seen> = seen_b.iter().map(|s| (s.lsn, s)).collect();
    for (lsn, id) in &oks {
        let s = by_lsn
            .get(lsn)
            .unwrap_or_else(|| panic!("A acknowledged LSN {lsn}; B did not recover it"));
        assert_eq!((s.base, &s.payload[..]), (*id, &payload(*id, 300)[..]), "LSN {lsn}");
    }
    assert!(rec_b.next_lsn > *oks.keys().last().unwrap());

    // B writes on; a later recovery has A's acknowledged entries and B's,
    // densely, and none of A's late (never acknowledged) objects.
    let b = Arc::new(b);
    let (more, order) = append_concurrently(&b, 5000, 1, 5, size300).await;
    assert_eq!(order[0], rec_b.next_lsn);
    b.shutdown().await;
    a.shutdown().await;
    let (c, rec, seen) = open_object(&r, opts()).await;
    assert!(rec.cut.is_none(), "{:?}", rec.cut);
    assert_eq!(
        seen.iter().map(|s| s.lsn).collect::<Vec<_>>(),
        (FIRST_LSN..rec.next_lsn).collect::<Vec<_>>()
    );
    assert_eq!(seen[..seen_b.len()], seen_b[..], "B's recovery is kept");
    assert_eq!(seen[seen_b.len()..], expected(&more, size300, 0)[..]);
    c.shutdown().await;
}

/// B claims epoch 2 but is slow to start; C claims epoch 3 and builds on a
/// late object of the fenced A. B's late start must not turn C's
/// acknowledged data into "zombies": C closes epoch 2 off, B fails to open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_openers_late_start_cannot_hide_a_newer_writers_data() {
    let (f, r) = faulty();
    let (a, _, _) = open_object(&r, opts()).await;
    let a = Arc::new(a);
    append_concurrently(&a, 0, 1, 10, size300).await;
    // A's next object is on its way to the store when B claims, and lands
    // only after B listed the objects. It holds one entry: entries queued
    // together may still group into several objects, and one sealed after
    // A is fenced is never uploaded.
    let gate = f.hold_matching(Op::Put, &format!("objects/{}", object_key(FIRST_LSN + 10, 1)), Some(1));
    let late = queue(&a, 100, 1).await;
    arrived(&gate, "A's late object").await;
    let pb = prepare(&r).await.unwrap();
    gate.release();
    for rx in late {
        let res = tokio::time::timeout(BOUND, rx).await.unwrap().unwrap();
        assert!(matches!(res, Err(WalError::Fenced { .. })), "{res:?}");
    }
    let (c, rec_c, _) = open_object(&r, opts()).await;
    assert_eq!(
        (c.epoch(), rec_c.next_lsn),
        (Some(3), FIRST_LSN + 11),
        "C replays A's late object"
    );
    let c = Arc::new(c);
    let (acks_c, _) = append_concurrently(&c, 1000, 1, 5, size300).await;
    c.shutdown().await;
    let b = Wal::open_object(
        pb,
        std::path::Path::new("unused"),
        opts(),
        super::tests_contract::fast(),
        &mut |_| {},
    )
    .await;
    assert!(
        matches!(&b, Err(WalError::Remote(m)) if m.contains("newer writer")),
        "{:?}",
        b.err()
    );
    a.shutdown().await;
    let (_d, rec_d, seen_d) = open_object(&r, opts()).await;
    assert!(rec_d.cut.is_none(), "{:?}", rec_d.cut);
    for (_, x) in &acks_c {
        assert!(
            seen_d.iter().any(|s| s.lsn == x.lsn),
            "C acknowledged LSN {} and D lost it",
            x.lsn
        );
    }
}

/// A trim that finds itself fenced after writing its checkpoint must not
/// put its trim point into later object headers: the successor read an
/// older checkpoint (snapshot) and must replay from that one's trim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_trims_point_never_reaches_a_header() {
    let (f, r) = faulty();
    let (a, _, _) = open_object(&r, opts()).await;
    let a = Arc::new(a);
    append_concurrently(&a, 0, 4, 10, size300).await;
    assert_eq!(a.trim_with(5, Some(Bytes::from_static(b"old"))).await.unwrap(), 5);
    // A's trim checked that it owns the log and is storing its checkpoint
    // when B claims the log; B reads the older checkpoint, then waits.
    let put = f.hold_matching(Op::Put, "wal/checkpoints/", Some(1));
    let get = f.hold_matching(Op::Get, "wal/checkpoints/", Some(1));
    let a2 = a.clone();
    let trim = tokio::spawn(async move { a2.trim_with(30, Some(Bytes::from_static(b"new"))).await });
    arrived(&put, "the trim's checkpoint").await;
    let r2 = r.clone();
    let b = tokio::spawn(async move { prepare(&r2).await });
    arrived(&get, "B's read of the checkpoint").await;
    // The trim finds itself fenced; A appends one more object before B
    // lists the objects.
    put.release();
    let t = tokio::time::timeout(BOUND, trim).await.unwrap().unwrap();
    assert!(matches!(t, Err(WalError::Fenced { .. })), "{t:?}");
    for rx in queue(&a, 500, 1).await {
        let res = tokio::time::timeout(BOUND, rx).await.unwrap().unwrap();
        assert!(res.is_err(), "a fenced writer acknowledged {res:?}");
    }
    assert!(
        stored(f.inner()).iter().any(|(first, _)| *first > FIRST_LSN + 39),
        "A's object after the trim is in the store"
    );
    get.release();
    let pb = tokio::time::timeout(BOUND, b).await.unwrap().unwrap().unwrap();
    assert_eq!(pb.checkpoint().map(|b| &b[..]), Some(&b"old"[..]));
    let (wb, rec_b, seen_b) = open_prepared(pb, opts()).await;
    assert_eq!(rec_b.trim_lsn, 5, "the trim point of the snapshot B loaded");
    assert_eq!(seen_b.first().map(|s| s.lsn), Some(5));
    wb.shutdown().await;
    a.shutdown().await;
}
