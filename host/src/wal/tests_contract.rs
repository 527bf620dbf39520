//! The WAL contract (see the module documentation of [`super`]), run
//! against every backend: local segment files, and the object-store backend
//! on an in-memory store, on a file store and on a real S3-protocol server
//! (moto, installed on first use; see `sluice_test_artifacts::moto`).
//!
//! Also home of the helpers the other WAL test modules share.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use object_store::ObjectStore;
use tempfile::TempDir;

use super::object::{ObjectOptions, Prepared, prepare};
use super::*;
use crate::objstore::{Remote, RemoteOptions};

/// A current-thread runtime for driving a WAL from a test.
pub(super) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A multi-thread runtime of `workers` workers (producers on several
/// threads; producers may commit in place, see `leader.rs`).
pub(super) fn rt_multi(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

pub(super) fn meta(i: u64) -> EntryMeta {
    EntryMeta {
        kind: EntryKind::Records,
        stream: 1,
        partition: (i % 3) as u32,
        base_offset: i,
        count: 1,
    }
}

pub(super) fn payload(i: u64, len: usize) -> Bytes {
    Bytes::from((0..len).map(|j| (i as usize * 31 + j) as u8).collect::<Vec<_>>())
}

/// An entry as recovery handed it over. `base` is the id the test gave the
/// entry (its `base_offset`), so its payload is `payload(base, len)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    pub lsn: u64,
    pub base: u64,
    pub payload: Vec<u8>,
    pub location: Location,
}

/// Object-store tuning that makes small objects quickly: 4 KiB or 5 ms.
pub(super) fn fast() -> ObjectOptions {
    ObjectOptions {
        interval: Duration::from_millis(5),
        max_bytes: 4096,
        in_flight: 4,
    }
}

/// A remote under `node/` whose calls fail fast.
pub(super) fn remote_on(store: Arc<dyn ObjectStore>, prefix: &str, opts: RemoteOptions) -> Remote {
    Remote::new(store, object_store::path::Path::from(prefix), opts)
}

/// Opens an object-store WAL that `prepare` planned, collecting what it replays.
pub(super) async fn open_prepared(prepared: Prepared, opts: Options) -> (Wal, Recovered, Vec<Seen>) {
    let mut seen = Vec::new();
    let (wal, rec) = Wal::open_object(prepared, std::path::Path::new("unused"), opts, fast(), &mut |e| {
        seen.push(seen_of(&e))
    })
    .await
    .unwrap();
    (wal, rec, seen)
}

/// Claims a new epoch on `r` and opens the WAL there.
pub(super) async fn open_object(r: &Remote, opts: Options) -> (Wal, Recovered, Vec<Seen>) {
    open_prepared(prepare(r).await.unwrap(), opts).await
}

fn seen_of(e: &RecoveredEntry<'_>) -> Seen {
    Seen {
        lsn: e.lsn,
        base: e.meta.base_offset,
        payload: e.payload.to_vec(),
        location: e.location,
    }
}

/// What recovery must return for the acknowledged appends `acks` (id and
/// where it landed) whose LSN is at least `from`, in LSN order.
pub(super) fn expected(acks: &[(u64, Appended)], size: fn(u64) -> usize, from: u64) -> Vec<Seen> {
    let mut want: Vec<Seen> = acks
        .iter()
        .filter(|(_, a)| a.lsn >= from)
        .map(|(id, a)| Seen {
            lsn: a.lsn,
            base: *id,
            payload: payload(*id, size(*id)).to_vec(),
            location: a.location,
        })
        .collect();
    want.sort_by_key(|s| s.lsn);
    want
}

/// The first acknowledged LSN at or above `from` that is not the first of
/// its segment (object): a trim there cuts through a segment.
pub(super) fn inside_a_segment(acks: &[(u64, Appended)], from: u64) -> u64 {
    let mut lsns: Vec<&Appended> = acks.iter().map(|(_, a)| a).filter(|a| a.lsn >= from).collect();
    lsns.sort_by_key(|a| a.lsn);
    lsns.iter()
        .find(|a| a.location.segment < a.lsn)
        .expect("a segment holding several entries")
        .lsn
}

/// Appends `tasks × per_task` entries from concurrent appenders (ids
/// `first_id..`, payload `payload(id, size(id))`). Returns each id with its
/// acknowledgement, and the LSNs in the order the completions ran.
pub(super) async fn append_concurrently(
    wal: &Arc<Wal>,
    first_id: u64,
    tasks: u64,
    per_task: u64,
    size: fn(u64) -> usize,
) -> (Vec<(u64, Appended)>, Vec<u64>) {
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (wal, order) = (wal.clone(), order.clone());
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..per_task {
                let id = first_id + t * per_task + i;
                let (tx, rx) = tokio::sync::oneshot::channel();
                let order = order.clone();
                wal.reserve(size(id)).await.unwrap().append(
                    meta(id),
                    payload(id, size(id)),
                    Box::new(move |r: Result<Appended, WalError>| {
                        if let Ok(a) = &r {
                            order.lock().unwrap().push(a.lsn);
                        }
                        let _ = tx.send(r);
                    }),
                );
                let a = rx.await.expect("completion dropped").expect("append failed");
                mine.push((id, a));
            }
            assert!(
                mine.windows(2).all(|w| w[0].1.lsn < w[1].1.lsn),
                "one appender saw its LSNs out of order"
            );
            mine
        }));
    }
    let mut acks = Vec::new();
    for h in handles {
        acks.extend(h.await.unwrap());
    }
    let order = order.lock().unwrap().clone();
    (acks, order)
}

/// Reads every `(lsn, location)` back (blocking reads, off the runtime).
pub(super) async fn read_all(wal: &Arc<Wal>, at: Vec<(u64, Location)>) -> Vec<Result<Bytes, WalError>> {
    let wal = wal.clone();
    tokio::task::spawn_blocking(move || at.iter().map(|(lsn, loc)| wal.read(*lsn, *loc)).collect())
        .await
        .unwrap()
}

/// The kinds of backend the contract runs on.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Local,
    Memory,
    File,
    S3,
}

/// A fresh, empty WAL location of one kind.
pub(super) enum Backend {
    Local(TempDir),
    Object {
        remote: Remote,
        /// Holds the file store, if any.
        _dir: Option<TempDir>,
    },
}

impl Backend {
    /// `None` when the kind is unavailable here (moto not installed outside
    /// CI), as the store tests of the tier module do.
    pub(super) fn new(kind: Kind) -> Option<Backend> {
        let opts = RemoteOptions {
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(10),
            ..RemoteOptions::default()
        };
        let dir = tempfile::tempdir().unwrap();
        Some(match kind {
            Kind::Local => Backend::Local(dir),
            Kind::Memory => Backend::Object {
                remote: remote_on(Arc::new(object_store::memory::InMemory::new()), "node", opts),
                _dir: None,
            },
            Kind::File => {
                let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
                Backend::Object {
                    remote: remote_on(Arc::new(fs), "node", opts),
                    _dir: Some(dir),
                }
            }
            Kind::S3 => {
                let s3 = crate::objstore::testing::moto_bucket("wal")?;
                Backend::Object {
                    remote: remote_on(s3, "node-a", opts),
                    _dir: None,
                }
            }
        })
    }

    /// Options for this backend: small segments for local files (so trims
    /// delete whole ones); objects are kept small by [`fast`].
    pub(super) fn options(&self) -> Options {
        Options {
            segment_bytes: 4096,
            ..Options::default()
        }
    }

    pub(super) async fn open(&self) -> (Wal, Recovered, Vec<Seen>) {
        self.open_with(self.options()).await
    }

    /// Recovers the WAL (collecting what it replays) and starts its writer.
    pub(super) async fn open_with(&self, opts: Options) -> (Wal, Recovered, Vec<Seen>) {
        match self {
            Backend::Local(dir) => {
                let mut seen = Vec::new();
                let (wal, rec) = Wal::open(dir.path(), opts, &mut |e| seen.push(seen_of(&e))).unwrap();
                (wal, rec, seen)
            }
            Backend::Object { remote, .. } => open_object(remote, opts).await,
        }
    }
}

/// Runs `test` on a fresh backend of `kind`, if available.
async fn run<F, Fut>(kind: Kind, test: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if let Some(b) = Backend::new(kind) {
        test(b).await;
    }
}

/// One test per backend for each contract function: `<name>::local`,
/// `<name>::memory`, `<name>::file`, `<name>::s3`.
macro_rules! contract {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use super::{Kind, run};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                run(Kind::Local, super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                run(Kind::Memory, super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn file() {
                run(Kind::File, super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                run(Kind::S3, super::$name).await;
            }
        }
    )+};
}

contract!(
    concurrent_appends_are_acknowledged_densely_in_lsn_order,
    acknowledged_entries_recover_in_order_byte_equal,
    read_returns_the_payload,
    trim_persists_and_nothing_below_it_is_replayed,
    oversized_entry_is_refused_and_the_log_continues,
    appends_after_reopen_continue_at_next_lsn,
);

fn small(_: u64) -> usize {
    64
}

/// Sizes from empty to about 700 bytes.
fn varied(id: u64) -> usize {
    (id as usize * 37) % 701
}

async fn concurrent_appends_are_acknowledged_densely_in_lsn_order(b: Backend) {
    let (wal, rec, seen) = b.open().await;
    assert!(seen.is_empty() && rec.cut.is_none());
    let start = rec.next_lsn;
    // Every backend numbers a new log from the same first LSN: snapshots
    // and checkpoints take "as of LSN 0" to mean "nothing".
    assert_eq!(start, FIRST_LSN, "a new log's first LSN");
    assert_eq!(wal.next_lsn(), start);
    let wal = Arc::new(wal);
    let (acks, order) = append_concurrently(&wal, 0, 8, 50, small).await;
    assert_eq!(
        order,
        (start..start + 400).collect::<Vec<u64>>(),
        "completions must run densely in LSN order"
    );
    let mut lsns: Vec<u64> = acks.iter().map(|(_, a)| a.lsn).collect();
    lsns.sort_unstable();
    assert_eq!(lsns, order, "each entry gets its own LSN");
    assert_eq!(wal.next_lsn(), start + 400);
    wal.shutdown().await;
}

async fn acknowledged_entries_recover_in_order_byte_equal(b: Backend) {
    let (wal, rec, _) = b.open().await;
    let start = rec.next_lsn;
    let wal = Arc::new(wal);
    let (acks, _) = append_concurrently(&wal, 0, 8, 50, varied).await;
    assert!(wal.segments().len() > 1, "the entries span several segments/objects");
    wal.shutdown().await;
    drop(wal);

    let (wal, rec, seen) = b.open().await;
    assert!(rec.cut.is_none(), "{:?}", rec.cut);
    assert_eq!((rec.next_lsn, rec.entries), (start + 400, 400));
    assert!(rec.trim_lsn <= start);
    assert_eq!(seen.len(), 400);
    // Same entries, same order, same bytes, same places.
    assert!(
        seen == expected(&acks, varied, 0),
        "recovery differs from what was acknowledged"
    );
    wal.shutdown().await;
}

async fn read_returns_the_payload(b: Backend) {
    let (wal, _, _) = b.open().await;
    let wal = Arc::new(wal);
    let (acks, _) = append_concurrently(&wal, 0, 4, 25, varied).await;
    let want = expected(&acks, varied, 0);
    let at: Vec<(u64, Location)> = want.iter().map(|s| (s.lsn, s.location)).collect();
    for (got, w) in read_all(&wal, at).await.into_iter().zip(&want) {
        assert_eq!(got.unwrap(), w.payload, "read of LSN {}", w.lsn);
    }
    // A location read as another LSN is refused, not silently returned.
    let (x, y) = (&want[10], &want[11]);
    let wrong = read_all(&wal, vec![(y.lsn, x.location)]).await.pop().unwrap();
    assert!(
        matches!(wrong, Err(WalError::Corrupt { .. })),
        "read of LSN {} at LSN {}'s location: {wrong:?}",
        y.lsn,
        x.lsn
    );
    wal.shutdown().await;
    drop(wal);

    // After a restart, the recovered locations read the same bytes.
    let (wal, _, seen) = b.open().await;
    let wal = Arc::new(wal);
    let at: Vec<(u64, Location)> = seen.iter().map(|s| (s.lsn, s.location)).collect();
    let got = read_all(&wal, at).await;
    assert_eq!(got.len(), want.len());
    for (got, w) in got.into_iter().zip(&want) {
        assert_eq!(got.unwrap(), w.payload, "read of LSN {} after reopen", w.lsn);
    }
    wal.shutdown().await;
}

async fn trim_persists_and_nothing_below_it_is_replayed(b: Backend) {
    let size: fn(u64) -> usize = |_| 200;
    let (wal, rec, _) = b.open().await;
    let start = rec.next_lsn;
    let wal = Arc::new(wal);
    let (mut acks, _) = append_concurrently(&wal, 0, 4, 25, size).await;
    let before = wal.segments().len();
    assert!(before >= 3, "{before} segments/objects");
    // A trim point inside a segment: only whole ones below it go, and the
    // entries of its own segment below it are not replayed.
    let trim = inside_a_segment(&acks, start + 50);
    assert_eq!(wal.trim(trim).await.unwrap(), trim);
    assert_eq!(wal.trim_lsn(), trim);
    assert!(
        wal.segments().len() < before,
        "trim deletes whole segments/objects below it"
    );
    // The trim point never moves back.
    assert_eq!(wal.trim(start + 10).await.unwrap(), trim);
    // A trimmed entry cannot be read; the one at the trim point can.
    let first = expected(&acks, size, 0);
    let at_trim = &first[(trim - start) as usize];
    let reads = read_all(&wal, vec![(first[0].lsn, first[0].location), (trim, at_trim.location)]).await;
    assert!(matches!(reads[0], Err(WalError::Trimmed { .. })), "{:?}", reads[0]);
    assert_eq!(reads[1].as_ref().unwrap(), &at_trim.payload);
    // Appends after the trim.
    let (more, _) = append_concurrently(&wal, 100, 2, 10, size).await;
    acks.extend(more);
    wal.shutdown().await;
    drop(wal);

    for round in 0..2 {
        let (wal, rec, seen) = b.open().await;
        assert_eq!(rec.trim_lsn, trim, "round {round}: the trim point is persisted");
        assert_eq!(
            rec.next_lsn,
            start + 120,
            "round {round}: trim does not move the log's end"
        );
        assert!(
            seen.iter().all(|s| s.lsn >= trim),
            "round {round}: an entry below the trim was replayed"
        );
        assert!(
            seen == expected(&acks, size, trim),
            "round {round}: entries from the trim point on"
        );
        assert_eq!(wal.trim_lsn(), trim);
        wal.shutdown().await;
    }
}

async fn oversized_entry_is_refused_and_the_log_continues(b: Backend) {
    let opts = Options {
        max_entry_bytes: 1000,
        ..b.options()
    };
    let (wal, rec, _) = b.open_with(opts.clone()).await;
    let start = rec.next_lsn;
    let err = wal.append(meta(0), payload(0, 1001)).await.unwrap_err();
    assert!(
        matches!(err, WalError::EntryTooLarge { size: 1001, max: 1000 }),
        "{err}"
    );
    assert_eq!(wal.append(meta(1), payload(1, 1000)).await.unwrap().lsn, start);
    let err = wal.append(meta(2), payload(2, 5000)).await.unwrap_err();
    assert!(matches!(err, WalError::EntryTooLarge { size: 5000, .. }), "{err}");
    assert_eq!(
        wal.append(meta(3), payload(3, 10)).await.unwrap().lsn,
        start + 1,
        "a refused entry takes no LSN"
    );
    wal.shutdown().await;
    drop(wal);
    let (wal, rec, seen) = b.open_with(opts).await;
    assert_eq!(rec.next_lsn, start + 2);
    let got: Vec<(u64, u64, &[u8])> = seen.iter().map(|s| (s.lsn, s.base, &s.payload[..])).collect();
    assert_eq!(
        got,
        vec![(start, 1, &payload(1, 1000)[..]), (start + 1, 3, &payload(3, 10)[..])]
    );
    wal.shutdown().await;
}

async fn appends_after_reopen_continue_at_next_lsn(b: Backend) {
    let (wal, rec, _) = b.open().await;
    let start = rec.next_lsn;
    let mut acks = Vec::new();
    let mut wal = Arc::new(wal);
    for round in 0..3u64 {
        let (mine, order) = append_concurrently(&wal, round * 100, 3, 10, varied).await;
        assert_eq!(order.first(), Some(&(start + round * 30)), "round {round}");
        acks.extend(mine);
        wal.shutdown().await;
        drop(wal);
        let (reopened, rec, seen) = b.open().await;
        assert!(rec.cut.is_none(), "{:?}", rec.cut);
        assert_eq!(rec.next_lsn, start + (round + 1) * 30);
        assert_eq!(reopened.next_lsn(), rec.next_lsn);
        assert!(seen == expected(&acks, varied, 0), "round {round}");
        wal = Arc::new(reopened);
    }
    wal.shutdown().await;
}
