//! The node's write-ahead log: one log shared by all partitions.
//!
//! Two backends behind one handle: segment files under `<data-dir>/wal/`
//! (see [`format`] for the byte layout, [`recovery`] for what start-up
//! tolerates, and [`writer`] for group commit), or objects in an object
//! store ([`object`], [`object_writer`]). Both share the bounded queue,
//! LSN assignment and the completion contract; each has its own writer.
//! The contract every backend keeps:
//!
//! * `append` completes only once the entry is durable, and completions run
//!   in LSN order (callers observe acknowledgements strictly in LSN order);
//! * recovery yields exactly a prefix of what was appended: every
//!   acknowledged entry, in order, possibly followed by entries whose
//!   acknowledgement was lost in a crash, and nothing after a gap;
//! * `trim(lsn)` persists the trim point before deleting anything, and only
//!   whole segments (objects) below it are deleted;
//! * the first entry of every log is [`FIRST_LSN`] (1): LSN 0 is never
//!   written, so "up to LSN 0" always means "nothing" (a metadata
//!   snapshot with `as_of_lsn` 0 covers no entry).

pub mod error;
mod faults;
pub mod format;
mod group_buf;
mod leader;
pub mod object;
pub mod object_acks;
mod object_epochs;
pub mod object_format;
pub mod object_recovery;
mod object_writer;
mod prepare;
pub mod recovery;
mod recycled_tail;
pub mod segment;
mod syncer;
pub mod writer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ahead;
#[cfg(test)]
mod tests_contract;
#[cfg(test)]
mod tests_lead;
#[cfg(test)]
mod tests_object;
#[cfg(test)]
mod tests_object_epochs;
#[cfg(test)]
mod tests_object_fences;
#[cfg(test)]
mod tests_prepare;
#[cfg(test)]
mod tests_recycle;
#[cfg(test)]
mod tests_syncer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

pub use error::{Corruption, WalError};
pub use faults::Faults;
pub use format::{EntryKind, EntryMeta};
pub use recovery::{Location, Recovered, RecoveredEntry};
pub use writer::Completion;

use format::{ENTRY_HEADER_LEN, MAX_PAYLOAD_LEN, decode_entry_header, entry_crc_ok};
use segment::{SegmentTable, create_segment};
use writer::{AppendRequest, Command, Progress, Writer};

/// The LSN of the first entry of every log, on both backends. LSN 0 is
/// never a real entry (docs/FORMATS.md, LSNs).
pub const FIRST_LSN: u64 = 1;

/// Tuning of the local WAL.
#[derive(Debug, Clone)]
pub struct Options {
    /// A segment is rolled once it would grow past this size.
    pub segment_bytes: u64,
    /// A group commit stops draining the queue past this many payload bytes.
    pub max_group_bytes: usize,
    /// Appends that may wait in the queue before `reserve` waits.
    pub queue_depth: usize,
    /// Payload bytes that may wait in the queue (queued, being written or
    /// synced) before `reserve` waits; one entry bigger than this still
    /// goes through, alone.
    pub queue_bytes: usize,
    /// Largest accepted payload of one entry.
    pub max_entry_bytes: usize,
    /// Trimmed segments kept on disk to be recycled as later ones (their
    /// blocks are written, so syncs into them commit no metadata and no
    /// zeros are written ahead); more are deleted. Zero deletes every
    /// trimmed segment.
    pub spare_segments: usize,
    /// A producer that finds the writer idle commits its append itself
    /// while groups sync faster than this on average (it blocks its thread
    /// for one sync; see [`Lead::now`]). Zero turns that off.
    pub lead_sync_max: std::time::Duration,
    /// Fault injection for tests (inactive unless switched on).
    pub faults: Faults,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_bytes: 128 * 1024 * 1024,
            max_group_bytes: 16 * 1024 * 1024,
            queue_depth: 4096,
            queue_bytes: 1024 * 1024 * 1024,
            max_entry_bytes: 64 * 1024 * 1024,
            spare_segments: 4,
            lead_sync_max: std::time::Duration::from_micros(250),
            faults: Faults::default(),
        }
    }
}

/// A durable append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub lsn: u64,
    pub location: Location,
}

/// Where entries live and how they are read back.
enum Backend {
    Local(Arc<SegmentTable>),
    Object(object::Reader),
}

/// The writer: a thread (local files) or a task (object store).
enum Worker {
    Thread(JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

/// Handle to the WAL; cheap to share behind an `Arc`.
pub struct Wal {
    dir: PathBuf,
    tx: mpsc::Sender<Command>,
    /// The local writer's driver (`leader.rs`); declared after `tx` so the
    /// writer thread is woken once the queue is closed.
    shared: Option<WakeOnDrop>,
    backend: Backend,
    progress: Arc<Progress>,
    max_entry_bytes: usize,
    /// The queue's byte budget and its size in permits.
    queue_bytes: (Arc<tokio::sync::Semaphore>, u32),
    worker: Mutex<Option<Worker>>,
    epoch: Option<u64>,
}

/// A reserved place in the append queue. Sending through it never waits, so
/// a caller can reserve, then assign offsets and send under a lock.
pub struct Permit<'a> {
    permit: mpsc::Permit<'a, Command>,
    shared: Option<&'a Arc<leader::Shared>>,
    max_entry_bytes: usize,
    /// The payload bytes reserved; released once the append completes.
    bytes: tokio::sync::OwnedSemaphorePermit,
}

/// Bytes per permit of the queue's byte budget (permits count in `u32`).
const QUEUE_UNIT: usize = 1024;

/// The byte budget of a WAL queue of `bytes` payload bytes.
fn queue_budget(bytes: usize) -> (Arc<tokio::sync::Semaphore>, u32) {
    let units = u32::try_from(bytes.div_ceil(QUEUE_UNIT).max(1))
        .unwrap_or(u32::MAX)
        .min(tokio::sync::Semaphore::MAX_PERMITS as u32);
    (Arc::new(tokio::sync::Semaphore::new(units as usize)), units)
}

/// Commits an append queued with [`Permit::append_led`]: [`Lead::now`]
/// does it in place when the writer is idle, or wakes the writer; dropped,
/// it wakes the writer.
#[must_use = "an append queued for leading waits until the lead runs or is dropped"]
pub struct Lead<'a> {
    shared: Option<&'a Arc<leader::Shared>>,
}

impl Lead<'_> {
    /// Commits the queued append here if the writer is idle (blocking this
    /// thread for one sync; `done` has then run when this returns), or
    /// hands it to the writer thread. Call it outside any lock.
    pub fn now(mut self) {
        if let Some(shared) = self.shared.take() {
            leader::lead(shared);
        }
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.wake();
        }
    }
}

impl<'a> Permit<'a> {
    /// Queues an append; `done` runs once it is durable (or failed).
    pub fn append(self, meta: EntryMeta, payload: Bytes, done: Completion) {
        drop(self.append_led(meta, payload, done));
    }

    /// Queues an append without waking the writer: the caller then leads it
    /// ([`Lead::now`], outside its locks), so a lone producer's append
    /// costs no hand-off to the writer thread and back.
    pub fn append_led(self, meta: EntryMeta, payload: Bytes, done: Completion) -> Lead<'a> {
        if payload.len() > self.max_entry_bytes {
            done(Err(WalError::EntryTooLarge {
                size: payload.len(),
                max: self.max_entry_bytes,
            }));
            return Lead { shared: None };
        }
        let bytes = self.bytes;
        let done: Completion = Box::new(move |r| {
            drop(bytes);
            done(r)
        });
        self.permit.send(Command::Append(AppendRequest { meta, payload, done }));
        if let Some(shared) = self.shared {
            shared.sent();
        }
        Lead { shared: self.shared }
    }
}

/// Wakes the writer thread when the handle goes (after the queue closed).
struct WakeOnDrop(Arc<leader::Shared>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.0.wake();
    }
}

impl Wal {
    /// Recovers the WAL in `dir` (calling `visit` for every live entry in LSN
    /// order) and starts the writer thread.
    pub fn open(
        dir: &Path,
        opts: Options,
        visit: &mut dyn FnMut(RecoveredEntry<'_>),
    ) -> Result<(Wal, Recovered), WalError> {
        let recovered = recovery::recover(dir, visit)?;
        let table = Arc::new(SegmentTable::default());
        for (first, path) in &recovered.segments {
            table.insert(*first, path.clone())?;
        }
        let (seg_first, seg_path, file, seg_len) = match recovered.segments.last() {
            Some((first, path)) => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| WalError::io("open segment for writing", path, e))?;
                (*first, path.clone(), file, recovered.tail_len)
            }
            None => {
                let (path, file) = create_segment(dir, recovered.next_lsn, recovered.trim_lsn)?;
                table.insert(recovered.next_lsn, path.clone())?;
                (recovered.next_lsn, path, file, format::SEGMENT_HEADER_LEN as u64)
            }
        };
        let mut live: Vec<u64> = recovered.segments.iter().map(|(l, _)| *l).collect();
        if live.is_empty() {
            live.push(seg_first);
        }
        let progress = Arc::new(Progress::default());
        progress.next_lsn.store(recovered.next_lsn, Ordering::Release);
        progress.trim_lsn.store(recovered.trim_lsn, Ordering::Release);
        let (tx, rx) = mpsc::channel(opts.queue_depth.max(1));
        let max_entry_bytes = opts.max_entry_bytes.min(MAX_PAYLOAD_LEN);
        let queue_bytes = opts.queue_bytes;
        // Zeros written ahead before a restart are written over, not cut.
        let file_len = file
            .metadata()
            .map_err(|e| WalError::io("stat segment", &seg_path, e))?
            .len()
            .max(seg_len);
        let mut spares = recovered.spares.clone();
        for extra in spares.split_off(spares.len().min(opts.spare_segments)) {
            std::fs::remove_file(&extra).map_err(|e| WalError::io("remove spare segment", &extra, e))?;
        }
        let writer = Writer {
            dir: dir.to_path_buf(),
            opts,
            file: Arc::new(file),
            seg_first,
            seg_path,
            seg_len,
            file_len,
            next_lsn: recovered.next_lsn,
            trim_lsn: recovered.trim_lsn,
            live,
            table: table.clone(),
            progress: progress.clone(),
            poisoned: None,
            roll_put_off: false,
            buf: Default::default(),
            preparing: None,
            spares,
            mean_group: 0,
            sync_micros: 0,
        };
        let shared = leader::Shared::new(writer, rx);
        let driven = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-wal".into())
            .spawn(move || leader::run_thread(driven))
            .map_err(|e| WalError::io("spawn WAL writer thread", dir, e))?;
        shared.set_thread(thread.thread().clone());
        let wal = Wal {
            dir: dir.to_path_buf(),
            tx,
            shared: Some(WakeOnDrop(shared)),
            backend: Backend::Local(table),
            progress,
            max_entry_bytes,
            queue_bytes: queue_budget(queue_bytes),
            worker: Mutex::new(Some(Worker::Thread(thread))),
            epoch: None,
        };
        Ok((wal, recovered))
    }

    /// Recovers an object-store WAL that [`object::prepare`] planned
    /// (calling `visit` for every live entry in LSN order) and starts its
    /// writer task. `dir` is only reported by [`Wal::dir`].
    pub async fn open_object(
        prepared: object::Prepared,
        dir: &Path,
        opts: Options,
        obj: object::ObjectOptions,
        visit: &mut dyn FnMut(RecoveredEntry<'_>),
    ) -> Result<(Wal, Recovered), WalError> {
        let replayed = prepared.replay(visit).await?;
        let recovered = replayed.recovered;
        let progress = Arc::new(Progress::default());
        progress.next_lsn.store(recovered.next_lsn, Ordering::Release);
        progress.trim_lsn.store(recovered.trim_lsn, Ordering::Release);
        let (tx, rx) = mpsc::channel(opts.queue_depth.max(1));
        let max_entry_bytes = opts.max_entry_bytes.min(MAX_PAYLOAD_LEN);
        let queue_bytes = opts.queue_bytes;
        let writer = object_writer::ObjectWriter {
            remote: replayed.remote.clone(),
            opts: obj,
            epoch: replayed.epoch,
            next_lsn: recovered.next_lsn,
            objects: replayed.objects.clone(),
            progress: progress.clone(),
            acks: object_acks::InOrder::new(recovered.next_lsn),
            poisoned: None,
            trims: Arc::default(),
        };
        metrics::gauge!(crate::metrics::WAL_FENCED).set(0.0);
        let task = tokio::spawn(writer.run(rx));
        let wal = Wal {
            dir: dir.to_path_buf(),
            tx,
            shared: None,
            backend: Backend::Object(object::Reader {
                remote: replayed.remote,
                objects: replayed.objects,
                runtime: tokio::runtime::Handle::current(),
            }),
            progress,
            max_entry_bytes,
            queue_bytes: queue_budget(queue_bytes),
            worker: Mutex::new(Some(Worker::Task(task))),
            epoch: Some(replayed.epoch),
        };
        Ok((wal, recovered))
    }

    /// Waits for room in the append queue.
    /// Reserves a place in the queue for an entry of `bytes` payload bytes:
    /// waits while `queue_depth` entries or `queue_bytes` bytes are ahead.
    pub async fn reserve(&self, bytes: usize) -> Result<Permit<'_>, WalError> {
        let (budget, total) = &self.queue_bytes;
        let units = u32::try_from(bytes.div_ceil(QUEUE_UNIT))
            .unwrap_or(u32::MAX)
            .min(*total);
        let bytes = budget
            .clone()
            .acquire_many_owned(units)
            .await
            .map_err(|_| WalError::Closed)?;
        let permit = self.tx.reserve().await.map_err(|_| WalError::Closed)?;
        Ok(Permit {
            permit,
            shared: self.shared.as_ref().map(|s| &s.0),
            max_entry_bytes: self.max_entry_bytes,
            bytes,
        })
    }

    /// Payload bytes the queue holds now (reserved and not yet durable),
    /// rounded up to whole KiB.
    pub fn queued_bytes(&self) -> usize {
        let (budget, total) = &self.queue_bytes;
        (*total as usize).saturating_sub(budget.available_permits()) * QUEUE_UNIT
    }

    /// Appends one entry and waits until it is durable (committing it in
    /// place when the writer is idle, see [`Lead::now`]).
    pub async fn append(&self, meta: EntryMeta, payload: Bytes) -> Result<Appended, WalError> {
        let (tx, rx) = oneshot::channel();
        self.reserve(payload.len())
            .await?
            .append_led(
                meta,
                payload,
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            )
            .now();
        rx.await.map_err(|_| WalError::Closed)?
    }

    /// Sends a command other than an append and wakes the writer.
    async fn command(&self, cmd: Command) -> Result<(), WalError> {
        self.tx.send(cmd).await.map_err(|_| WalError::Closed)?;
        if let Some(s) = &self.shared {
            s.0.sent();
            s.0.wake();
        }
        Ok(())
    }

    /// Reads back the payload of the entry at `location`, checking its CRC.
    /// Blocking: call from a blocking context (never an async task).
    pub fn read(&self, lsn: u64, location: Location) -> Result<Bytes, WalError> {
        let table = match &self.backend {
            Backend::Local(table) => table,
            Backend::Object(reader) => return reader.read(lsn, location),
        };
        let seg = table.get(location.segment).ok_or(WalError::Trimmed { lsn })?;
        let mut buf = vec![0u8; location.len as usize];
        let read = seg
            .read_exact_at(&mut buf, location.pos)
            .and_then(|()| check_entry(lsn, Bytes::from(buf), location.pos, || seg.path.clone()));
        match read {
            // Trimmed while it was read: a recycled file may hold newer
            // entries there (or be shorter), which the LSN check refuses.
            Err(_) if table.get(location.segment).is_none() => Err(WalError::Trimmed { lsn }),
            read => read,
        }
    }

    /// Persists `lsn` as the trim point and deletes whole segments below it.
    /// Returns the trim point in force (never beyond the log's end).
    pub async fn trim(&self, lsn: u64) -> Result<u64, WalError> {
        self.trim_with(lsn, None).await
    }

    /// Like [`Wal::trim`]; an object-store WAL stores `checkpoint` (the
    /// log's metadata as of the trim) with the trim point, before deleting.
    pub async fn trim_with(&self, lsn: u64, checkpoint: Option<Bytes>) -> Result<u64, WalError> {
        let (done, rx) = oneshot::channel();
        self.command(Command::Trim { lsn, checkpoint, done }).await?;
        rx.await.map_err(|_| WalError::Closed)?
    }

    /// Whether entries live in an object store (the log then stores a
    /// checkpoint with each trim).
    /// Why the WAL refuses appends, once a write, sync or upload failed (it
    /// stays failed until a restart recovers).
    pub fn failure(&self) -> Option<String> {
        self.progress.failed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn is_object(&self) -> bool {
        matches!(self.backend, Backend::Object(_))
    }

    /// The object-store writer's epoch (`None` for local files).
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// Drains queued appends, syncs, and stops the writer thread.
    pub async fn shutdown(&self) {
        let (done, rx) = oneshot::channel();
        if self.command(Command::Shutdown(done)).await.is_ok() {
            let _ = rx.await;
        }
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        match worker {
            Some(Worker::Thread(h)) => {
                let _ = tokio::task::spawn_blocking(move || h.join()).await;
            }
            Some(Worker::Task(h)) => {
                let _ = h.await;
            }
            None => {}
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// LSN the next appended entry gets.
    pub fn next_lsn(&self) -> u64 {
        self.progress.next_lsn.load(Ordering::Acquire)
    }

    pub fn trim_lsn(&self) -> u64 {
        self.progress.trim_lsn.load(Ordering::Acquire)
    }

    /// Group commits so far (fdatasync calls, or objects acknowledged).
    pub fn syncs(&self) -> u64 {
        self.progress.syncs.load(Ordering::Relaxed)
    }

    /// Groups a producer committed in place (see [`Lead::now`]).
    pub fn led(&self) -> u64 {
        self.progress.led.load(Ordering::Relaxed)
    }

    /// First LSNs of the live segments (or objects).
    pub fn segments(&self) -> Vec<u64> {
        match &self.backend {
            Backend::Local(table) => table.first_lsns(),
            Backend::Object(reader) => reader.objects.firsts(),
        }
    }
}

/// Checks that `buf` is exactly the entry `lsn` with a good CRC, and
/// returns its payload. `source` names where it was read, for errors.
pub(crate) fn check_entry(lsn: u64, buf: Bytes, pos: u64, source: impl Fn() -> PathBuf) -> Result<Bytes, WalError> {
    let corrupt = |reason| WalError::Corrupt {
        segment: source(),
        pos,
        reason,
    };
    let raw: [u8; ENTRY_HEADER_LEN] = buf
        .get(..ENTRY_HEADER_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| corrupt(Corruption::Truncated))?;
    let header = decode_entry_header(&raw).map_err(corrupt)?;
    if header.lsn != lsn {
        return Err(corrupt(Corruption::LsnGap {
            expected: lsn,
            found: header.lsn,
        }));
    }
    if ENTRY_HEADER_LEN + header.payload_len != buf.len() || !entry_crc_ok(&header, &raw, &buf[ENTRY_HEADER_LEN..]) {
        return Err(corrupt(Corruption::BadCrc));
    }
    Ok(buf.slice(ENTRY_HEADER_LEN..))
}
