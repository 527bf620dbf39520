//! Object-store WAL tests beyond the shared contract
//! ([`super::tests_contract`]): what the object backend must survive, with
//! faults injected into an in-memory store ([`FaultyStore`]): uploads that
//! finish out of order, a missing object, failed trim deletes, a failed
//! upload, a slow upload (writers taking over: [`super::tests_object_fences`]).
//!
//! Uploads run concurrently and appends group into objects by size and by
//! time: a fault targets one object by its key (never "the next upload"),
//! and where events must happen in an order a call is held at a [`Gate`]
//! until the test has seen what must come first (never a sleep).

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::object::prepare;
use super::object_format::{object_key, parse_object_key};
use super::tests_contract::{
    append_concurrently, expected, inside_a_segment, meta, open_object, open_prepared, payload, remote_on,
};
use super::*;
use crate::objstore::faults::{Fault, FaultyStore, Gate, Op};
use crate::objstore::{Remote, RemoteOptions};

/// A faulty in-memory store and a remote on it that does not retry (an
/// injected error fails the call), with a timeout that outlasts any call a
/// test holds at a gate.
pub(super) fn faulty() -> (Arc<FaultyStore>, Remote) {
    let store = FaultyStore::new(Arc::new(InMemory::new()));
    let opts = RemoteOptions {
        timeout: BOUND,
        retries: 0,
        backoff: Duration::from_millis(5),
        ..RemoteOptions::default()
    };
    (store.clone(), remote_on(store, "node", opts))
}

pub(super) fn opts() -> Options {
    Options::default()
}

/// How long a test waits for something that must happen (generous: the
/// machine may be loaded); never a sleep that orders events.
pub(super) const BOUND: Duration = Duration::from_secs(20);

/// Waits until `gate` holds its first call.
pub(super) async fn arrived(gate: &Gate, what: &str) {
    tokio::time::timeout(BOUND, gate.wait_arrived(1))
        .await
        .unwrap_or_else(|_| panic!("{what} never reached its gate"));
}

/// Waits (bounded) until `cond` holds.
pub(super) async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(super) fn objects_dir() -> ObjectPath {
    ObjectPath::from("node/wal/objects")
}

/// `(first_lsn, epoch)` of every WAL object in `store`, sorted. Only for
/// stores that answer at once (in memory): usable inside a completion.
pub(super) fn stored(store: &Arc<dyn ObjectStore>) -> Vec<(u64, u64)> {
    let listed = store
        .list(Some(&objects_dir()))
        .collect::<Vec<_>>()
        .now_or_never()
        .expect("an in-memory listing is immediate");
    let mut out: Vec<(u64, u64)> = listed
        .into_iter()
        .filter_map(|m| parse_object_key(m.unwrap().location.filename()?))
        .collect();
    out.sort_unstable();
    out
}

pub(super) fn object_path(first: u64, epoch: u64) -> ObjectPath {
    objects_dir().join(object_key(first, epoch).as_str())
}

/// First LSNs of the objects the acknowledged appends landed in.
pub(super) fn firsts(acks: &[(u64, Appended)]) -> Vec<u64> {
    let mut f: Vec<u64> = acks.iter().map(|(_, a)| a.location.segment).collect();
    f.sort_unstable();
    f.dedup();
    f
}

pub(super) fn size300(_: u64) -> usize {
    300
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_read_back_and_recover() {
    let r = remote_on(Arc::new(InMemory::new()), "node", RemoteOptions::default());
    let (wal, rec, seen) = open_object(&r, opts()).await;
    assert_eq!((rec.next_lsn, seen.len(), wal.epoch()), (FIRST_LSN, 0, Some(1)));
    let wal = Arc::new(wal);
    let (acks, _) = append_concurrently(&wal, 0, 4, 10, size300).await;
    assert!(
        firsts(&acks).len() > 1,
        "300-byte entries in 4 KiB objects span several objects"
    );
    let objects = wal.segments();
    assert_eq!(objects, firsts(&acks));
    assert_eq!(wal.syncs(), objects.len() as u64, "one acknowledged group per object");
    wal.shutdown().await;
    drop(wal);
    let (wal, rec, seen) = open_object(&r, opts()).await;
    assert_eq!((rec.next_lsn, wal.epoch()), (FIRST_LSN + 40, Some(2)));
    assert!(seen == expected(&acks, size300, 0));
    let l = inside_a_segment(&acks, 20);
    let trim = wal.trim_with(l, Some(Bytes::from_static(b"{}"))).await.unwrap();
    assert_eq!(trim, l);
    wal.shutdown().await;
    drop(wal);
    let prepared = prepare(&r).await.unwrap();
    assert_eq!(
        prepared.checkpoint().map(|b| &b[..]),
        Some(&b"{}"[..]),
        "the trim's checkpoint"
    );
    let (_wal, rec, seen) = open_prepared(prepared, opts()).await;
    assert_eq!((rec.trim_lsn, rec.next_lsn), (l, FIRST_LSN + 40));
    assert!(seen == expected(&acks, size300, l));
}

/// An acknowledgement as a completion saw it: the result, and which
/// objects were in the store at that moment.
type Ack = (Result<Appended, String>, Vec<(u64, u64)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_finishing_out_of_order_are_acknowledged_in_lsn_order() {
    let (f, r) = faulty();
    let (wal, rec, _) = open_object(&r, opts()).await;
    assert_eq!(rec.next_lsn, FIRST_LSN);
    let epoch = wal.epoch().unwrap();
    // The first object's upload is held; later ones are not.
    let first = format!("objects/{}", object_key(FIRST_LSN, epoch));
    let gate = f.hold_matching(Op::Put, &first, Some(1));
    let acked: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let mut waits = Vec::new();
    // One appender queues every entry at once, so objects fill and seal
    // back to back and several upload together.
    for i in 0..60u64 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (acked, inner) = (acked.clone(), f.inner().clone());
        wal.reserve(300).await.unwrap().append(
            meta(i),
            payload(i, 300),
            Box::new(move |r| {
                let now = stored(&inner);
                acked.lock().unwrap().push((r.map_err(|e| e.to_string()), now));
                let _ = tx.send(());
            }),
        );
        waits.push(rx);
    }
    // The first object finishes only once a later one is durable, and
    // nothing is acknowledged meanwhile.
    arrived(&gate, "the first object's upload").await;
    wait_until("a later object is durable", || {
        stored(f.inner()).iter().any(|(first, _)| *first > FIRST_LSN)
    })
    .await;
    assert!(acked.lock().unwrap().is_empty(), "acknowledged before the first object");
    gate.release();
    for w in waits {
        tokio::time::timeout(BOUND, w).await.unwrap().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let got: Vec<Appended> = acked.iter().map(|(r, _)| r.clone().unwrap()).collect();
    assert_eq!(
        got.iter().map(|a| a.lsn).collect::<Vec<_>>(),
        (FIRST_LSN..FIRST_LSN + 60).collect::<Vec<u64>>(),
        "completions ran out of LSN order"
    );
    let objects: Vec<u64> = {
        let mut o: Vec<u64> = got.iter().map(|a| a.location.segment).collect();
        o.dedup();
        o
    };
    assert!(objects.len() >= 3, "{objects:?}");
    // No entry was acknowledged before its object and every earlier one
    // (the delayed first one included) was in the store.
    for (a, (_, present)) in got.iter().zip(&acked) {
        for o in objects.iter().filter(|o| **o <= a.location.segment) {
            assert!(
                present.contains(&(*o, epoch)),
                "LSN {} acknowledged while object {o} was not durable ({present:?})",
                a.lsn
            );
        }
    }
    // The scenario happened: later objects were durable before the first one
    // was acknowledged (they finished first).
    assert!(
        acked[0].1.iter().any(|(first, _)| *first > FIRST_LSN),
        "no later object finished before the delayed first one: {:?}",
        acked[0].1
    );
    assert_eq!(
        f.calls(Op::Put) as usize,
        objects.len() + 3,
        "the objects plus claim, start and epoch history"
    );
    wal.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_object_in_the_middle_drops_everything_after_it() {
    let (f, r) = faulty();
    let (wal, _, _) = open_object(&r, opts()).await;
    let wal = Arc::new(wal);
    let (acks, _) = append_concurrently(&wal, 0, 4, 15, size300).await;
    wal.shutdown().await;
    drop(wal);
    let objects = firsts(&acks);
    assert!(objects.len() >= 4, "{objects:?}");
    let victim = objects[2];
    f.inner().delete(&object_path(victim, 1)).await.unwrap();

    let (wal, rec, seen) = open_object(&r, opts()).await;
    let kept = expected(&acks, size300, 0)
        .into_iter()
        .filter(|s| s.lsn < victim)
        .collect::<Vec<_>>();
    assert!(
        seen == kept,
        "replayed {} entries, want the {} before LSN {victim}",
        seen.len(),
        kept.len()
    );
    assert_eq!((rec.next_lsn, wal.next_lsn()), (victim, victim));
    let cut = rec.cut.expect("the gap is reported");
    assert_eq!(
        cut.dropped_files.len(),
        objects.len() - 3,
        "every later object is ignored"
    );
    // Ignored, not deleted.
    let later: Vec<(u64, u64)> = objects[3..].iter().map(|o| (*o, 1)).collect();
    assert!(later.iter().all(|o| stored(f.inner()).contains(o)));

    // The log goes on from the gap...
    let wal = Arc::new(wal);
    let (more, order) = append_concurrently(&wal, 1000, 1, 5, size300).await;
    assert_eq!(order, (victim..victim + 5).collect::<Vec<_>>());
    wal.shutdown().await;
    drop(wal);
    // ... and a further recovery keeps it, without the old epoch's later
    // objects (written before the new epoch started at the gap).
    let (wal, rec, seen) = open_object(&r, opts()).await;
    assert!(rec.cut.is_none(), "{:?}", rec.cut);
    let mut want = kept;
    want.extend(expected(&more, size300, 0));
    assert!(seen == want, "{:?}", seen.iter().map(|s| s.lsn).collect::<Vec<_>>());
    assert_eq!(rec.next_lsn, victim + 5);
    wal.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trim_whose_deletes_failed_does_not_resurrect_trimmed_data() {
    let (f, r) = faulty();
    let (wal, _, _) = open_object(&r, opts()).await;
    let wal = Arc::new(wal);
    let (mut acks, _) = append_concurrently(&wal, 0, 4, 25, size300).await;
    let objects = firsts(&acks);
    assert!(objects.len() >= 6, "{objects:?}");

    // A trim with two objects below it whose first delete fails...
    let l1 = objects[2];
    f.inject(Op::Delete, Fault::Error, Some(1));
    assert_eq!(wal.trim(l1).await.unwrap(), l1);
    let now = stored(f.inner());
    assert!(now.contains(&(objects[0], 1)), "the failed delete left the object");
    assert!(!now.contains(&(objects[1], 1)), "the other delete went through");
    // ... and one whose deletes all fail (inside an object, if it holds
    // several entries).
    let l2 = objects[4] + (objects[5] - objects[4]) / 2;
    f.inject(Op::Delete, Fault::Error, None);
    let deletes = f.calls(Op::Delete);
    assert_eq!(wal.trim(l2).await.unwrap(), l2);
    assert!(f.calls(Op::Delete) > deletes, "the trim tried to delete");
    let now = stored(f.inner());
    assert!(
        now.contains(&(objects[2], 1)) && now.contains(&(objects[3], 1)),
        "{now:?}"
    );
    // Objects written after the trim carry it in their headers.
    let (more, _) = append_concurrently(&wal, 1000, 1, 10, size300).await;
    acks.extend(more);
    wal.shutdown().await;
    drop(wal);

    // Deletes still fail during recovery: the dead objects stay, ignored.
    let (wal, rec, seen) = open_object(&r, opts()).await;
    assert_eq!((rec.trim_lsn, rec.next_lsn), (l2, FIRST_LSN + 110));
    assert!(seen.iter().all(|s| s.lsn >= l2), "a trimmed entry was replayed");
    assert!(seen == expected(&acks, size300, l2));
    wal.shutdown().await;
    drop(wal);
    assert!(stored(f.inner()).contains(&(objects[0], 1)));

    // Even with the checkpoints lost, the headers keep the trim point.
    f.clear();
    let checkpoints = f
        .inner()
        .list(Some(&ObjectPath::from("node/wal/checkpoints")))
        .collect::<Vec<_>>()
        .await;
    assert!(!checkpoints.is_empty());
    for c in checkpoints {
        f.inner().delete(&c.unwrap().location).await.unwrap();
    }
    let (wal, rec, seen) = open_object(&r, opts()).await;
    assert_eq!((rec.trim_lsn, rec.next_lsn), (l2, FIRST_LSN + 110));
    assert!(seen == expected(&acks, size300, l2));
    wal.shutdown().await;
}

/// Deterministic whatever the machine's load: the fault is armed only once
/// the first appends are acknowledged, and for the object that starts right
/// after them (uploads run concurrently: "the next PUT to arrive" could be a
/// later object's, leaving an earlier one acknowledged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_fails_its_appends_and_every_later_one() {
    let (f, r) = faulty();
    let (wal, rec, _) = open_object(&r, opts()).await;
    let start = rec.next_lsn;
    let mut results = Vec::new();
    for rx in queue(&wal, 0, 20).await {
        results.push(
            tokio::time::timeout(Duration::from_secs(20), rx)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    // The next object's upload fails (no retries); every append queued
    // with or behind it fails, however the appends group into objects.
    let key = format!("objects/{}", object_key(start + 20, wal.epoch().unwrap()));
    f.inject_matching(Op::Put, &key, Fault::Error, Some(1));
    for rx in queue(&wal, 20, 40).await {
        results.push(
            tokio::time::timeout(Duration::from_secs(20), rx)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(a) => {
                assert!(i < 20, "entry {i} acknowledged after the failed upload");
                assert_eq!(a.lsn, start + i as u64);
            }
            Err(e) => {
                assert!(i >= 20, "entry {i} failed before the fault: {e}");
                assert!(matches!(e, WalError::Poisoned(_) | WalError::Remote(_)), "{e}");
            }
        }
    }
    let err = wal.append(meta(99), payload(99, 10)).await.unwrap_err();
    assert!(matches!(err, WalError::Poisoned(_)), "{err}");
    assert!(err.to_string().contains("injected fault"), "{err}");
    wal.shutdown().await;
    drop(wal);

    // Recovery keeps exactly the acknowledged prefix (the failed object is
    // missing; objects after it are ignored), and the log goes on.
    let (wal, rec, seen) = open_object(&r, opts()).await;
    let acks: Vec<(u64, Appended)> = results[..20]
        .iter()
        .map(|r| r.as_ref().unwrap())
        .enumerate()
        .map(|(i, a)| (i as u64, *a))
        .collect();
    assert!(
        seen == expected(&acks, size300, 0),
        "replayed {} entries, 20 acknowledged",
        seen.len()
    );
    assert_eq!(rec.next_lsn, start + 20);
    assert_eq!(wal.append(meta(7), payload(7, 10)).await.unwrap().lsn, start + 20);
    wal.shutdown().await;
    drop(wal);
    let (wal, rec, seen) = open_object(&r, opts()).await;
    assert!(rec.cut.is_none(), "{:?}", rec.cut);
    assert_eq!((seen.len(), rec.next_lsn), (21, start + 21));
    wal.shutdown().await;
}

/// Queues `n` appends at once; their outcomes arrive on the receivers.
pub(super) async fn queue(
    wal: &Wal,
    from: u64,
    n: u64,
) -> Vec<tokio::sync::oneshot::Receiver<Result<Appended, WalError>>> {
    let mut v = Vec::new();
    for i in from..from + n {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done: Completion = Box::new(move |r| {
            let _ = tx.send(r);
        });
        wal.reserve(300).await.unwrap().append(meta(i), payload(i, 300), done);
        v.push(rx);
    }
    v
}

/// Objects stored but not yet acknowledged count against the in-flight
/// bound: one slow upload makes producers wait instead of filling memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_pushes_back_on_producers() {
    let (f, r) = faulty();
    let small = Options {
        queue_depth: 64,
        ..opts()
    };
    let (wal, _, _) = open_object(&r, small).await;
    let gate = f.hold_matching(Op::Put, &format!("objects/{}", object_key(FIRST_LSN, 1)), Some(1));
    let wal = Arc::new(wal);
    let accepted = Arc::new(AtomicU64::new(0));
    let (w, q) = (wal.clone(), accepted.clone());
    let producer = tokio::spawn(async move {
        let mut rxs = Vec::new();
        for i in 0..600u64 {
            rxs.extend(queue(&w, i, 1).await);
            q.fetch_add(1, AtomicOrdering::Relaxed);
        }
        rxs
    });
    // While the first upload is held, the producer fills the pipeline: 4
    // objects in flight (1 to 12 entries each: 4 KiB holds 12 of 340
    // bytes), the one filling (12) and the queue (64)...
    arrived(&gate, "the first object's upload").await;
    wait_until("the producer filled the pipeline", || {
        accepted.load(AtomicOrdering::Relaxed) >= 64 + 12 + 4
    })
    .await;
    // ... and no further, however long the upload takes (the pause only
    // gives a missing bound the time to show).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held = accepted.load(AtomicOrdering::Relaxed);
    assert!(held <= 64 + 5 * 12, "{held} appends accepted behind one slow upload");
    assert!(!producer.is_finished());
    gate.release();
    for rx in tokio::time::timeout(BOUND, producer).await.unwrap().unwrap() {
        tokio::time::timeout(BOUND, rx).await.unwrap().unwrap().unwrap();
    }
    wal.shutdown().await;
}
