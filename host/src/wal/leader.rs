//! Who drives the local writer: its own thread, or a producer that finds
//! it idle and commits its append in place.
//!
//! The writer's state, the queue's receiving end and the sync thread live
//! in one [`Core`] behind a mutex; whoever holds it takes commands from the
//! queue in order, so LSN order is queue order whoever commits, and every
//! rule of `writer.rs` (durable before acknowledged, completions in LSN
//! order, fail-stop, the sync thread's ordering) holds for both.
//!
//! A lone producer pays for its append twice over if it hands it to the
//! writer thread: one wake-up of the writer, one of the producer's task
//! when the acknowledgement comes back (about 14 µs against an 85 µs sync
//! on the machine docs/BENCHMARKS.md reports). So a producer whose append
//! finds the writer idle commits it itself, on its own thread, and returns
//! with the acknowledgement already run ([`lead`]). It does that only when
//! nothing is there for the writer to gather (the last group had at most
//! one entry), nothing is syncing on the sync thread, its runtime has other
//! workers (a multi-thread Tokio runtime) and recent syncs were quick
//! (`Options::lead_sync_max`, 250 µs by default): the worker is blocked for
//! one sync, as long as a short computation. Otherwise it wakes the writer thread.
//!
//! When the last group had n > 1 entries (at most `LEAD_GROUPS_UP_TO`), its
//! producers come back one by one: each but the last wakes the writer
//! thread, which waits for the rest without the lock, and the last one back
//! commits all n in place. Its completions then wake the others' tasks on
//! a runtime worker instead of from the writer thread.
//!
//! Invariants:
//! * A command in the queue is always taken by someone: its sender either
//!   wakes the writer thread or leads; a leader that leaves commands behind
//!   wakes the writer thread; the thread looks for work after every wake-up
//!   and parks only when no command is counted in `pending`.
//! * A producer commits at most one group in place, then hands the rest to
//!   the writer thread.
//! * After a group of n > 1 entries the writer thread waits up to
//!   `GATHER_FOR` for the first of them to come back, yielding rather than
//!   parked, then up to `2 * GATHER_FOR` in all for n, so producers
//!   acknowledged together share the next fsync (a lone producer never
//!   waits). Once n are queued it leaves them to the last producer back for
//!   up to `GATHER_FOR`, then commits them itself: a group is never left
//!   waiting for a producer that does not lead.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, error::TryRecvError};

use super::syncer::Syncer;
use super::writer::{Command, Writer};

/// Longest the writer waits for the producers of the last group to come
/// back before it writes the next: a fraction of one fdatasync, so a lone
/// producer (whose group had one entry) never waits.
const GATHER_FOR: Duration = Duration::from_micros(50);

/// The last producer back commits a group of at most this many entries in
/// place; bigger groups are the writer thread's. With 4 and 16 producers
/// committing in place measured 7–12% faster (completions run on a runtime
/// worker, no wake-up crosses threads); with 64 it measured 18% slower (one
/// worker blocked in the sync while 63 tasks wait to be woken).
const LEAD_GROUPS_UP_TO: usize = 16;

/// What producers and the writer thread share.
pub struct Shared {
    core: Mutex<Core>,
    /// Commands sent and not yet taken from the queue. A sender counts after
    /// sending, so this may be below zero for a moment.
    pending: AtomicI64,
    /// The writer thread, to wake it.
    thread: OnceLock<std::thread::Thread>,
    /// Entries in the last group committed here, 0 when it was handed to
    /// the sync thread (its producers are not coming back yet): how many
    /// producers are expected back. Written under the core's lock.
    expect: AtomicUsize,
    /// Groups committed so far: the writer thread stops waiting for a group
    /// that a producer has committed in place.
    groups: AtomicU64,
}

/// The writer and everything only its driver touches.
pub struct Core {
    writer: Writer,
    rx: mpsc::Receiver<Command>,
    syncer: Option<Syncer>,
    /// A command taken from the queue behind a group, handled next.
    next: Option<Command>,
    stopped: bool,
}

impl Shared {
    pub fn new(writer: Writer, rx: mpsc::Receiver<Command>) -> Arc<Shared> {
        // Without a sync thread every group is synced by the committer, as
        // it is whenever none is in flight there.
        let syncer = Syncer::start(writer.progress.clone(), writer.opts.faults.clone())
            .inspect_err(|e| tracing::warn!(error = %e, "no WAL sync thread; groups are synced by the writer"))
            .ok();
        Arc::new(Shared {
            core: Mutex::new(Core {
                writer,
                rx,
                syncer,
                next: None,
                stopped: false,
            }),
            pending: AtomicI64::new(0),
            thread: OnceLock::new(),
            expect: AtomicUsize::new(0),
            groups: AtomicU64::new(0),
        })
    }

    /// Counts a command just sent.
    pub fn sent(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// Wakes the writer thread (cheap when it is awake).
    pub fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    pub fn set_thread(&self, thread: std::thread::Thread) {
        let _ = self.thread.set(thread);
    }

    /// The core, even after a panic in a completion: the writer is then
    /// failed, so nothing more is acknowledged on a state it may have left
    /// half updated.
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| {
            let mut core = p.into_inner();
            core.writer.fail("a WAL completion panicked");
            core
        })
    }
}

/// The writer thread: takes and commits commands until the queue closes or
/// a shutdown. After a group of several entries it does not park at once:
/// their producers are coming back ([`wait_for_group`]).
pub fn run_thread(shared: Arc<Shared>) {
    loop {
        if shared.lock().drain(&shared) {
            return;
        }
        wait_for_group(&shared);
        if shared.pending.load(Ordering::Acquire) <= 0 {
            std::thread::park();
            wait_for_group(&shared);
        }
    }
}

/// After a group of n > 1 entries, waits (yielding, without the lock) for
/// its producers to come back: at most `GATHER_FOR` for the first, then
/// until n are queued, `2 * GATHER_FOR` in all. When n are queued the last
/// of them commits them in place ([`lead`]); this thread takes the group
/// only if that producer does not within `GATHER_FOR`. Returns at once when
/// a producer has committed a group meanwhile.
fn wait_for_group(shared: &Shared) {
    let expect = shared.expect.load(Ordering::Acquire);
    if expect <= 1 {
        return;
    }
    let led_here = expect <= LEAD_GROUPS_UP_TO;
    let expect = i64::try_from(expect).unwrap_or(i64::MAX);
    let groups = shared.groups.load(Ordering::Acquire);
    let start = Instant::now();
    let mut complete: Option<Instant> = None;
    loop {
        if shared.groups.load(Ordering::Acquire) != groups {
            return;
        }
        let pending = shared.pending.load(Ordering::Acquire);
        let now = Instant::now();
        let waited = now - start;
        if pending >= expect {
            // Complete: its last producer commits it, unless it cannot.
            let since = *complete.get_or_insert(now);
            if !led_here || now - since >= GATHER_FOR {
                return;
            }
        } else if (pending <= 0 && waited >= GATHER_FOR) || waited >= 2 * GATHER_FOR {
            return;
        }
        std::thread::yield_now();
    }
}

/// Commits the queue's first group here if the writer is idle (see the
/// module doc); wakes the writer thread otherwise, and whenever something is
/// left in the queue.
pub fn lead(shared: &Shared) {
    if !may_block_here() {
        shared.wake();
        return;
    }
    // Producers of the last group come back one by one: the last of them
    // commits the group; the others leave it to the writer thread, which
    // waits for the rest.
    let expect = shared.expect.load(Ordering::Acquire);
    let queued = usize::try_from(shared.pending.load(Ordering::Acquire)).unwrap_or(0);
    if expect > LEAD_GROUPS_UP_TO || (expect > 1 && queued < expect) {
        shared.wake();
        return;
    }
    let Ok(mut core) = shared.core.try_lock() else {
        shared.wake();
        return;
    };
    if !core.can_lead() {
        drop(core);
        shared.wake();
        return;
    }
    let led = match core.take(shared) {
        Some(Command::Append(first)) => {
            core.append_group(first, shared);
            true
        }
        Some(other) => {
            core.next = Some(other);
            false
        }
        None => false,
    };
    if led {
        core.writer.progress.led.fetch_add(1, Ordering::Relaxed);
    }
    let left = core.next.is_some() || core.stopped;
    drop(core);
    if left || shared.pending.load(Ordering::Acquire) > 0 {
        shared.wake();
    }
}

/// Whether this thread may block for one sync: a worker of a multi-thread
/// Tokio runtime (others take its tasks) or a thread outside any runtime.
fn may_block_here() -> bool {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread,
        Err(_) => true,
    }
}

impl Core {
    fn can_lead(&self) -> bool {
        !self.stopped
            && self.next.is_none()
            && !self.syncer.as_ref().is_some_and(Syncer::busy)
            && Duration::from_micros(self.writer.sync_micros) < self.writer.opts.lead_sync_max
    }

    /// Takes a command from the queue, uncounting it in `pending`.
    fn recv(&mut self, shared: &Shared) -> Result<Command, TryRecvError> {
        let c = self.rx.try_recv()?;
        shared.pending.fetch_sub(1, Ordering::AcqRel);
        Ok(c)
    }

    /// The next command, if any; marks the core stopped when the queue is
    /// closed and empty.
    fn take(&mut self, shared: &Shared) -> Option<Command> {
        if let Some(c) = self.next.take() {
            return Some(c);
        }
        match self.recv(shared) {
            Ok(c) => Some(c),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.stop();
                None
            }
        }
    }

    /// Handles every command queued now. Returns whether the writer stopped.
    fn drain(&mut self, shared: &Shared) -> bool {
        while !self.stopped {
            match self.take(shared) {
                None => break,
                Some(Command::Append(first)) => {
                    self.append_group(first, shared);
                    if shared.expect.load(Ordering::Acquire) > 1 {
                        // Its producers are coming back: wait for them
                        // (`wait_for_group`) rather than take the first alone.
                        break;
                    }
                }
                Some(Command::Trim { lsn, done, .. }) => {
                    let _ = done.send(self.writer.trim(lsn));
                }
                Some(Command::Shutdown(done)) => {
                    self.stop();
                    let _ = done.send(());
                }
            }
        }
        self.stopped
    }

    /// Gathers a group behind `first` and commits it.
    fn append_group(&mut self, first: super::writer::AppendRequest, shared: &Shared) {
        let mut group_bytes = first.payload.len();
        let mut group = vec![first];
        while group_bytes < self.writer.opts.max_group_bytes {
            match self.recv(shared) {
                Ok(Command::Append(r)) => {
                    group_bytes += r.payload.len();
                    group.push(r);
                }
                Ok(other) => {
                    self.next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let group_len = group.len();
        let handed_over = self.writer.commit(group, self.syncer.as_ref());
        // Producers of a group still syncing are not coming back yet:
        // nothing to gather for.
        shared
            .expect
            .store(if handed_over { 0 } else { group_len }, Ordering::Release);
        shared.groups.fetch_add(1, Ordering::AcqRel);
    }

    /// Waits for the sync thread, syncs the segment and stops preparing.
    /// The queue is closed: later sends fail, and appends still queued are
    /// dropped unanswered (their callers see the WAL closed), as when the
    /// writer thread ends.
    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.rx.close();
        while self.rx.try_recv().is_ok() {}
        self.next = None;
        if let Some(s) = self.syncer.as_mut() {
            s.finish();
        }
        self.writer.final_sync();
        self.writer.cancel_preparation();
    }
}
