//! The writer's state: group commit, segment rolling and trimming. One
//! committer at a time drives it (`leader.rs`: the writer thread, or a
//! producer that finds the writer idle).
//!
//! Invariants:
//! * LSNs are assigned in the order requests leave the queue, densely.
//! * A group takes what is queued (`leader.rs` gathers it).
//! * A group is written with one positional vectored write per segment
//!   touched (`group_buf.rs`: big payloads are not copied) and made durable
//!   with `fdatasync` before any of its completions runs. Groups of
//!   `HAND_OVER_FROM` bytes or more, and every group while earlier ones are
//!   there, are synced and completed on the sync thread (`syncer.rs`) while
//!   this thread writes the next; the others here.
//! * Completions run one after another, in LSN order (on the committer's
//!   thread only when nothing is in flight on the sync thread); a completion that
//!   follows another saw the earlier one finish.
//! * After any failed write or sync the writer is poisoned: every pending and
//!   later append fails, so the log never has a hole that later entries skip.
//! * Groups are written at the segment's length with positional writes. After
//!   a small group the writer keeps zero bytes written ahead of that length
//!   (`ZERO_AHEAD`), so the next syncs overwrite allocated blocks of a file
//!   whose size does not change, and fdatasync has no metadata to commit.
//!   Recovery reads zeros after the last entry as the segment's clean end; a
//!   segment is cut to its entries before the next one is created, so only
//!   the active segment ever has zeros after its end.
//! * Once the active segment is half full, and unless groups are big (mean
//!   group of `PREPARE_BELOW` or more), the next segment is prepared full
//!   of zeros on its own thread (`prepare.rs`); the roll takes it when it is
//!   ready and creates a segment as before when not, so groups of every
//!   size then sync into written blocks with no top-ups on the way.
//! * Trimmed segments are kept as spares (`*.spare`, up to
//!   `Options::spare_segments`) instead of being deleted, and the next
//!   segment is prepared from a spare when there is one, whatever the group
//!   size: its blocks are written already, so it costs no zeros. A spare is
//!   renamed only after the trim point is persisted, and removed from the
//!   readers' table first (a read racing the recycle fails its LSN check).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::error::WalError;
use super::format::{EntryMeta, SEGMENT_HEADER_LEN, encode_trim, entry_len};
use super::group_buf::GroupBuf;
use super::prepare::Preparing;
use super::recovery::{Location, TRIM_FILE};
use super::segment::{SegmentTable, create_segment};
use super::syncer::{Syncer, Written};
use super::{Appended, Options};
use crate::fsutil::{sync_dir, write_atomic};

/// How far ahead of a segment's end zeros are kept written (see the module
/// invariants); topped up when less than half of it is left. The sync after
/// a top-up also writes the zeros out: a top-up of 4 MiB comes once per
/// hundreds of groups, so it shows beyond p99, not in it (1 MiB top-ups
/// every ~30 groups of 16 KiB did).
pub const ZERO_AHEAD: u64 = 8 * 1024 * 1024;

/// Groups up to this size get zeros written ahead of them. Bigger groups
/// stream at the disk's rate, where writing every block twice would cost
/// more than the metadata a sync of a growing file commits.
const ZERO_FILL_MAX_GROUP: usize = 32 * 1024;

/// Groups from this size on are synced on the sync thread while the
/// writer writes the next: writing them takes long enough to overlap.
const HAND_OVER_FROM: usize = 512 * 1024;

/// Segments are prepared ahead (`prepare.rs`) only while the mean group is
/// below this. A prepared file spares each sync the metadata commit of a
/// growing file (60–90 µs on the machine docs/BENCHMARKS.md reports) but
/// writes every byte twice; from groups of about this size on, the second
/// write costs the disk more time than the metadata saves, and while the
/// zeros are written (and synced) the groups' own syncs wait behind them.
pub const PREPARE_BELOW: usize = 128 * 1024;

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Called once with the outcome of an append, on the writer thread. It must
/// be quick and must not wait on the WAL.
pub type Completion = Box<dyn FnOnce(Result<Appended, WalError>) + Send>;

pub struct AppendRequest {
    pub meta: EntryMeta,
    pub payload: Bytes,
    pub done: Completion,
}

pub enum Command {
    Append(AppendRequest),
    Trim {
        lsn: u64,
        /// Metadata stored with the trim point (object backend only).
        checkpoint: Option<Bytes>,
        done: oneshot::Sender<Result<u64, WalError>>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// Progress published by the writer for status and readers.
#[derive(Debug, Default)]
pub struct Progress {
    /// LSN the next entry gets; all below it that are not trimmed are durable.
    pub next_lsn: AtomicU64,
    pub trim_lsn: AtomicU64,
    /// Number of fdatasync calls (group commits), for metrics and benchmarks.
    pub syncs: AtomicU64,
    /// Segment rolls into a file prepared ahead (see `prepare.rs`).
    pub prepared_rolls: AtomicU64,
    /// Of those, rolls into a recycled spare.
    pub recycled_rolls: AtomicU64,
    /// Groups committed in place by a producer (see `leader.rs`).
    pub led: AtomicU64,
    /// Why the writer refuses appends, once it failed (readiness shows it).
    pub failed: std::sync::Mutex<Option<String>>,
}

impl Progress {
    pub(super) fn set_failed(&self, why: &str) {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.get_or_insert_with(|| why.to_string());
    }
}

pub struct Writer {
    pub dir: PathBuf,
    pub opts: Options,
    pub file: Arc<File>,
    pub seg_first: u64,
    pub seg_path: PathBuf,
    pub seg_len: u64,
    /// The active segment's file length: `seg_len` plus any zeros written
    /// ahead of it.
    pub file_len: u64,
    pub next_lsn: u64,
    pub trim_lsn: u64,
    /// First LSNs of live segments, ascending; the last is `seg_first`.
    pub live: Vec<u64>,
    pub table: Arc<SegmentTable>,
    pub progress: Arc<Progress>,
    pub poisoned: Option<String>,
    /// A roll was put off for lack of descriptors (logged once per episode).
    pub roll_put_off: bool,
    pub buf: GroupBuf,
    /// The next segment, being prepared (see `prepare.rs`).
    pub preparing: Option<Preparing>,
    /// Trimmed segments kept for recycling (see `retire`).
    pub spares: Vec<PathBuf>,
    /// Bytes per group, a decaying mean: whether groups stream.
    pub mean_group: usize,
    /// Microseconds per write and fdatasync of a group synced here, a
    /// decaying mean: whether a producer may commit in place (`leader.rs`).
    pub sync_micros: u64,
}

impl Writer {
    /// Fails the writer: every later append fails.
    pub(super) fn fail(&mut self, why: &str) {
        if self.poisoned.is_none() {
            tracing::error!(error = %why, "WAL write failed; refusing further appends until restart");
            self.progress.set_failed(why);
            self.poisoned = Some(why.to_string());
        }
    }

    /// Syncs the active segment once more before the writer stops.
    pub(super) fn final_sync(&mut self) {
        if self.poisoned.is_none()
            && let Err(e) = self.file.sync_data()
        {
            tracing::error!(error = %e, "final WAL sync failed");
        }
    }

    /// Writes `group` and makes it durable: here, or (for a big group, or
    /// while earlier groups are there) on the sync thread, so the next group
    /// is written while this one syncs. Returns whether it was handed over.
    pub(super) fn commit(&mut self, group: Vec<AppendRequest>, syncer: Option<&Syncer>) -> bool {
        // Busy first: the sync thread publishes a failure before it counts
        // the failed group done, so when nothing is in flight any failure
        // is visible below, and a group synced here can never be
        // acknowledged after one that failed there.
        let busy = syncer.is_some_and(Syncer::busy);
        if self.poisoned.is_none() {
            self.poisoned = self.progress.failed.lock().unwrap_or_else(|p| p.into_inner()).clone();
        }
        if let Some(why) = &self.poisoned {
            let acks = group.into_iter().map(|r| (r.done, dummy_appended())).collect();
            return self.finish_failed(acks, WalError::Poisoned(why.clone()), syncer, busy);
        }
        let mut acks: Vec<(Completion, Appended)> = Vec::with_capacity(group.len());
        self.buf.clear();
        let mut result = Ok(());
        for r in group {
            let len = entry_len(r.payload.len());
            let pending = self.seg_len + self.buf.len() as u64;
            if result.is_ok() && pending + len as u64 > self.opts.segment_bytes && pending > SEGMENT_HEADER_LEN as u64 {
                result = self.flush_buf().and_then(|()| self.roll());
            }
            if result.is_err() {
                acks.push((r.done, dummy_appended()));
                continue;
            }
            let location = Location {
                segment: self.seg_first,
                pos: self.seg_len + self.buf.len() as u64,
                len: len as u32,
            };
            self.buf.push_entry(self.next_lsn, &r.meta, &r.payload);
            acks.push((
                r.done,
                Appended {
                    lsn: self.next_lsn,
                    location,
                },
            ));
            self.next_lsn += 1;
        }
        let commit_started = std::time::Instant::now();
        let group_bytes = self.buf.len();
        if result.is_ok() {
            result = self.flush_buf().and_then(|()| {
                if group_bytes <= ZERO_FILL_MAX_GROUP {
                    self.zero_ahead()?;
                }
                Ok(())
            });
        }
        if let Err(e) = result {
            return self.finish_failed(acks, e, syncer, busy);
        }
        // Mean group size, decaying (weight 1/8 per group).
        self.mean_group = self.mean_group - self.mean_group / 8 + group_bytes / 8;
        self.prepare_next();
        if let Some(syncer) = syncer
            && (busy || group_bytes >= HAND_OVER_FROM)
        {
            syncer.hand_over(Written {
                file: self.file.clone(),
                path: self.seg_path.clone(),
                acks,
                next_lsn: self.next_lsn,
                failed: None,
            });
            return true;
        }
        let synced = if self.opts.faults.sync_fails() {
            Err(std::io::Error::other("injected failure (wal::sync::err)"))
        } else {
            self.file.sync_data()
        };
        if let Err(e) = synced {
            return self.finish_failed(acks, WalError::io("fdatasync segment", &self.seg_path, e), syncer, busy);
        }
        self.progress.syncs.fetch_add(1, Ordering::Relaxed);
        let took = commit_started.elapsed();
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sync_micros = self.sync_micros - self.sync_micros / 8 + micros / 8;
        metrics::counter!(crate::metrics::WAL_FSYNCS).increment(1);
        metrics::histogram!(crate::metrics::WAL_FSYNC_SECONDS).record(took.as_secs_f64());
        self.progress.next_lsn.store(self.next_lsn, Ordering::Release);
        for (done, appended) in acks {
            done(Ok(appended));
        }
        false
    }

    /// Fails a group and poisons the writer; the completions run after
    /// those of groups still on the sync thread. Returns whether the group
    /// was handed over.
    fn finish_failed(
        &mut self,
        acks: Vec<(Completion, Appended)>,
        e: WalError,
        syncer: Option<&Syncer>,
        busy: bool,
    ) -> bool {
        let why = e.to_string();
        self.fail(&why);
        if let Some(syncer) = syncer
            && busy
        {
            syncer.hand_over(Written {
                file: self.file.clone(),
                path: self.seg_path.clone(),
                acks,
                next_lsn: self.next_lsn,
                failed: Some(e),
            });
            return true;
        }
        let mut first = Some(e);
        for (done, _) in acks {
            done(Err(first.take().unwrap_or_else(|| WalError::Poisoned(why.clone()))));
        }
        false
    }

    /// Writes the group buffer to the current segment.
    fn flush_buf(&mut self) -> Result<(), WalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.buf
            .write_at(&self.file, self.seg_len)
            .map_err(|e| WalError::io("write segment", &self.seg_path, e))?;
        self.seg_len += self.buf.len() as u64;
        self.file_len = self.file_len.max(self.seg_len);
        self.buf.clear();
        Ok(())
    }

    /// Keeps at least half of `ZERO_AHEAD` zero bytes written after the
    /// segment's end, never past `segment_bytes`.
    fn zero_ahead(&mut self) -> Result<(), WalError> {
        if self.seg_len + ZERO_AHEAD / 2 <= self.file_len {
            return Ok(());
        }
        let target = (self.seg_len + ZERO_AHEAD).min(self.opts.segment_bytes);
        while self.file_len < target {
            let n = (target - self.file_len).min(ZEROS.len() as u64) as usize;
            self.file
                .write_all_at(&ZEROS[..n], self.file_len)
                .map_err(|e| WalError::io("write zeros ahead in segment", &self.seg_path, e))?;
            self.file_len += n as u64;
        }
        Ok(())
    }

    /// Syncs the current segment and starts a new one at `next_lsn`. When
    /// the process is out of file descriptors, the roll is put off: the
    /// group goes on in the current segment (segments may outgrow
    /// `segment_bytes`) and the next group tries again, so a descriptor
    /// shortage never fails the WAL. Nothing is on disk yet when that
    /// happens (`create_segment` takes its descriptors first).
    fn roll(&mut self) -> Result<(), WalError> {
        if self.file_len > self.seg_len {
            self.file
                .set_len(self.seg_len)
                .map_err(|e| WalError::io("cut segment to its entries", &self.seg_path, e))?;
            self.file_len = self.seg_len;
        }
        self.file
            .sync_data()
            .map_err(|e| WalError::io("fdatasync segment", &self.seg_path, e))?;
        let created = if self.opts.faults.segment_creates_fail() {
            let injected = std::io::Error::from_raw_os_error(EMFILE);
            Err(WalError::io("create segment", &self.dir, injected))
        } else if let Some(prepared) = self.take_prepared() {
            if prepared.is_recycled() {
                self.progress.recycled_rolls.fetch_add(1, Ordering::Relaxed);
            }
            prepared.install(&self.dir, self.next_lsn, self.trim_lsn)
        } else {
            create_segment(&self.dir, self.next_lsn, self.trim_lsn)
                .map(|(path, file)| (path, file, SEGMENT_HEADER_LEN as u64))
        };
        let (path, file, file_len) = match created {
            Ok(created) => created,
            Err(e) if out_of_descriptors(&e) => {
                if !self.roll_put_off {
                    tracing::warn!(error = %e, "WAL segment roll put off: no file descriptor left; writing on in the current segment");
                }
                self.roll_put_off = true;
                metrics::counter!(crate::metrics::WAL_ROLLS_PUT_OFF).increment(1);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if self.roll_put_off {
            tracing::info!("WAL segment roll done after being put off");
            self.roll_put_off = false;
        }
        self.table.insert(self.next_lsn, path.clone())?;
        self.live.push(self.next_lsn);
        self.file = Arc::new(file);
        self.seg_first = self.next_lsn;
        self.seg_path = path;
        self.seg_len = SEGMENT_HEADER_LEN as u64;
        self.file_len = file_len.max(self.seg_len);
        if file_len > self.seg_len {
            self.progress.prepared_rolls.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(
            first_lsn = self.seg_first,
            prepared = file_len > self.seg_len,
            "rolled WAL segment"
        );
        Ok(())
    }

    /// Starts preparing the next segment once the active one is half full
    /// (a WAL that never gets there never pays for a prepared file): from a
    /// spare when there is one, else full of zeros unless groups are big
    /// (`PREPARE_BELOW`): they gain little from written blocks, and writing
    /// every segment twice would take the bandwidth and the CPU they need.
    fn prepare_next(&mut self) {
        if self.preparing.is_some() || self.seg_len < self.opts.segment_bytes / 2 {
            return;
        }
        if let Some(spare) = self.spares.pop() {
            match Preparing::recycle(&self.dir, spare.clone(), self.opts.segment_bytes) {
                Ok(p) => self.preparing = Some(p),
                Err(e) => {
                    tracing::warn!(error = %e, "WAL spare segment not recycled; the next segment is created at the roll");
                    self.spares.push(spare);
                }
            }
            return;
        }
        if self.mean_group >= PREPARE_BELOW {
            return;
        }
        match Preparing::start(&self.dir, self.opts.segment_bytes) {
            Ok(p) => self.preparing = Some(p),
            Err(e) => tracing::warn!(error = %e, "WAL segment not prepared ahead; it is created at the roll"),
        }
    }

    /// The prepared next segment, if its preparation is done and worked. A
    /// preparation still running is left to run (the next roll may use it).
    fn take_prepared(&mut self) -> Option<super::prepare::Prepared> {
        if !self.preparing.as_ref().is_some_and(Preparing::is_finished) {
            return None;
        }
        match self.preparing.take()?.join() {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "WAL segment preparation failed; creating the segment at the roll");
                None
            }
        }
    }

    pub(super) fn cancel_preparation(&mut self) {
        if let Some(p) = self.preparing.take() {
            p.cancel();
        }
    }

    /// Persists a new trim point, then deletes segments wholly below it
    /// (keeping up to `spare_segments` of them as spares).
    pub(super) fn trim(&mut self, lsn: u64) -> Result<u64, WalError> {
        // Never past what is durable (groups may still be syncing).
        let lsn = lsn.min(self.progress.next_lsn.load(Ordering::Acquire));
        if lsn <= self.trim_lsn {
            return Ok(self.trim_lsn);
        }
        let marker = self.dir.join(TRIM_FILE);
        write_atomic(&marker, &encode_trim(lsn)).map_err(|e| WalError::io("persist trim point", &marker, e))?;
        self.trim_lsn = lsn;
        self.progress.trim_lsn.store(lsn, Ordering::Release);
        while self.live.len() >= 2 && self.live[1] <= lsn {
            let first = self.live[0];
            let path = self.dir.join(super::segment::segment_name(first));
            self.table.remove(first);
            self.retire(&path, self.live[1])?;
            self.live.remove(0);
        }
        sync_dir(&self.dir).map_err(|e| WalError::io("sync WAL directory", &self.dir, e))?;
        Ok(lsn)
    }
}

impl Writer {
    /// Keeps the trimmed segment at `path` (its entries below `bound`) as a
    /// spare while there is room for one, else deletes it.
    fn retire(&mut self, path: &std::path::Path, bound: u64) -> Result<(), WalError> {
        if self.spares.len() < self.opts.spare_segments {
            let spare = self.dir.join(super::segment::spare_name(bound));
            match std::fs::rename(path, &spare) {
                Ok(()) => {
                    self.spares.push(spare);
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(error = %e, segment = %path.display(), "trimmed WAL segment not kept as a spare")
                }
            }
        }
        std::fs::remove_file(path).map_err(|e| WalError::io("remove trimmed segment", path, e))
    }
}

/// `EMFILE` (the process's limit) and `ENFILE` (the system's), the same
/// numbers on Linux and macOS.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// Whether `e` failed for lack of a file descriptor.
fn out_of_descriptors(e: &WalError) -> bool {
    matches!(e, WalError::Io { source, .. } if matches!(source.raw_os_error(), Some(EMFILE | ENFILE)))
}

fn dummy_appended() -> Appended {
    Appended {
        lsn: 0,
        location: Location {
            segment: 0,
            pos: 0,
            len: 0,
        },
    }
}
