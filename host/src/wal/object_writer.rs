//! The object-store WAL's writer task: groups appends into objects,
//! uploads several at once, and releases acknowledgements in LSN order.
//!
//! Invariants:
//! * LSNs are assigned densely in queue order; an object holds consecutive
//!   LSNs and carries the trim point in force when it was sealed;
//! * an object's completions run only once it and every earlier object are
//!   durable ([`InOrder`]) *and* a check that began after those uploads
//!   finished found no newer epoch claimed: a fenced writer acknowledges
//!   nothing a newer writer's recovery could have missed;
//! * after any failed upload, failed check or fence the writer is poisoned:
//!   that object and every later append fail, so nothing after a hole is
//!   ever acknowledged (recovery stops at the first missing object);
//! * a trim persists its checkpoint, then checks that no newer epoch was
//!   claimed, and only then deletes objects below it: a successor either
//!   fenced the trim or sees its checkpoint (and so never indexes an
//!   object the trim deletes).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::Appended;
use super::error::WalError;
use super::format::{EntryMeta, entry_len};
use super::object::{
    EPOCHS_DIR, Live, ObjectOptions, Objects, checkpoint_path, checkpoints_below, key_path, object_path, remote_err,
};
use super::object_acks::InOrder;
use super::object_format::{OBJECT_HEADER_LEN, encode_object};
use super::recovery::Location;
use super::writer::{AppendRequest, Command, Completion, Progress};
use crate::fsutil::now_ms;
use crate::metrics as m;
use crate::objstore::Remote;

type Pending = (Completion, Appended, Instant);

/// A fence check: the objects it covers and the newer epoch found, if any.
type Check = tokio::task::JoinHandle<(Vec<u64>, Result<Option<u64>, WalError>)>;

/// The object being filled.
struct Open {
    first: u64,
    bytes: usize,
    deadline: tokio::time::Instant,
    entries: Vec<(EntryMeta, Bytes)>,
    items: Vec<Pending>,
}

/// What an upload task reports.
struct Uploaded {
    first: u64,
    last: u64,
    key: String,
    result: Result<(), WalError>,
}

pub(crate) struct ObjectWriter {
    pub remote: Remote,
    pub opts: ObjectOptions,
    pub epoch: u64,
    pub next_lsn: u64,
    pub objects: Arc<Objects>,
    pub progress: Arc<Progress>,
    pub acks: InOrder<Pending>,
    pub poisoned: Option<WalError>,
    /// Serializes trims (each runs as its own task).
    pub trims: Arc<tokio::sync::Mutex<()>>,
}

impl ObjectWriter {
    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut open: Option<Open> = None;
        let mut uploads: JoinSet<Uploaded> = JoinSet::new();
        // Durable objects whose release waits for a fence check.
        let mut unchecked: Vec<u64> = Vec::new();
        let mut check: Option<Check> = None;
        let mut closing: Option<Option<oneshot::Sender<()>>> = None;
        loop {
            // Objects not yet acknowledged (uploading, or stored and
            // waiting for an earlier one or a fence check) hold their
            // appends' memory: they are what the bound limits.
            let slot = self.acks.in_flight() < self.opts.in_flight.max(1);
            if let Some(o) = &open
                && slot
                && (o.bytes >= self.opts.max_bytes || tokio::time::Instant::now() >= o.deadline || closing.is_some())
                && let Some(o) = open.take()
            {
                self.seal(o, &mut uploads);
                continue;
            }
            if check.is_none() && !unchecked.is_empty() {
                let firsts = std::mem::take(&mut unchecked);
                let (remote, epoch) = (self.remote.clone(), self.epoch);
                check = Some(tokio::spawn(async move { (firsts, newer_epoch(&remote, epoch).await) }));
            }
            if let Some(done) = &mut closing
                && open.is_none()
                && uploads.is_empty()
                && check.is_none()
                && unchecked.is_empty()
            {
                if let Some(done) = done.take() {
                    let _ = done.send(());
                }
                return;
            }
            let receive = closing.is_none() && open.as_ref().is_none_or(|o| o.bytes < self.opts.max_bytes);
            let deadline = open.as_ref().filter(|_| slot).map(|o| o.deadline);
            tokio::select! {
                cmd = rx.recv(), if receive => match cmd {
                    Some(Command::Append(r)) => self.add(r, &mut open),
                    Some(Command::Trim { lsn, checkpoint, done }) => self.trim(lsn, checkpoint, done),
                    Some(Command::Shutdown(done)) => closing = Some(Some(done)),
                    None => closing = Some(None),
                },
                _ = sleep_until(deadline), if deadline.is_some() => {}
                Some(joined) = uploads.join_next(), if !uploads.is_empty() => {
                    let up = match joined {
                        Ok(up) => up,
                        Err(e) => {
                            self.poison(WalError::Poisoned(format!("WAL upload task failed: {e}")), None);
                            continue;
                        }
                    };
                    metrics::gauge!(m::WAL_OBJECTS_IN_FLIGHT).set(uploads.len() as f64);
                    match up.result {
                        Ok(()) => {
                            self.objects.insert(up.first, Live { key: up.key, last: up.last });
                            unchecked.push(up.first);
                        }
                        Err(e) => self.poison(e, Some(up.first)),
                    }
                }
                joined = join(&mut check), if check.is_some() => {
                    check = None;
                    match joined {
                        Ok((firsts, Ok(None))) => self.release(&firsts),
                        Ok((firsts, Ok(Some(newer)))) => {
                            metrics::gauge!(m::WAL_FENCED).set(1.0);
                            tracing::error!(epoch = self.epoch, newer, "a newer WAL writer claimed this log; this node stops writing");
                            // Nothing more is acknowledged, whatever is durable.
                            drop(firsts);
                            self.poison(WalError::Fenced { epoch: self.epoch, newer }, None);
                        }
                        Ok((firsts, Err(e))) => self.poison(e, firsts.iter().min().copied()),
                        Err(e) => self.poison(WalError::Poisoned(format!("WAL fence check failed: {e}")), None),
                    }
                }
            }
        }
    }

    fn add(&mut self, r: AppendRequest, open: &mut Option<Open>) {
        if let Some(e) = &self.poisoned {
            (r.done)(Err(again(e)));
            return;
        }
        let o = open.get_or_insert_with(|| Open {
            first: self.next_lsn,
            bytes: OBJECT_HEADER_LEN,
            deadline: tokio::time::Instant::now() + self.opts.interval,
            entries: Vec::new(),
            items: Vec::new(),
        });
        let len = entry_len(r.payload.len());
        let appended = Appended {
            lsn: self.next_lsn,
            location: Location {
                segment: o.first,
                pos: o.bytes as u64,
                len: len as u32,
            },
        };
        o.bytes += len;
        o.entries.push((r.meta, r.payload));
        o.items.push((r.done, appended, Instant::now()));
        self.next_lsn += 1;
    }

    fn seal(&mut self, o: Open, uploads: &mut JoinSet<Uploaded>) {
        let last = self.next_lsn - 1;
        if let Err(items) = self.acks.push(o.first, last, o.items) {
            self.fail_all(items);
            return;
        }
        let trim = self.progress.trim_lsn.load(Ordering::Acquire);
        let refs: Vec<(EntryMeta, &[u8])> = o.entries.iter().map(|(m, p)| (*m, p.as_ref())).collect();
        let body = Bytes::from(encode_object(self.epoch, o.first, trim, now_ms(), &refs));
        drop(refs);
        let (key, path) = object_path(&self.remote, o.first, self.epoch);
        let (remote, epoch, first) = (self.remote.clone(), self.epoch, o.first);
        let size = body.len();
        uploads.spawn(async move {
            let started = Instant::now();
            let result = match remote.put_if_absent(&path, body).await {
                Ok(true) => Ok(()),
                // A retried create whose first attempt landed: ours if the
                // header says so.
                Ok(false) => match remote.get_range(&path, 0..OBJECT_HEADER_LEN as u64).await {
                    Ok(h)
                        if super::object_format::decode_header(&h)
                            .is_ok_and(|h| h.epoch == epoch && h.last_lsn == last) =>
                    {
                        Ok(())
                    }
                    _ => Err(WalError::Remote(format!(
                        "WAL object {key} already exists, written by another writer"
                    ))),
                },
                Err(e) => Err(remote_err(e)),
            };
            metrics::histogram!(m::WAL_OBJECT_UPLOAD_SECONDS).record(started.elapsed().as_secs_f64());
            if result.is_ok() {
                metrics::counter!(m::WAL_OBJECT_BYTES).increment(size as u64);
            }
            Uploaded {
                first,
                last,
                key,
                result,
            }
        });
        metrics::gauge!(m::WAL_OBJECTS_IN_FLIGHT).set(uploads.len() as f64);
    }

    /// Releases whatever the fenced-checked objects make releasable.
    fn release(&mut self, firsts: &[u64]) {
        let mut sorted = firsts.to_vec();
        sorted.sort_unstable();
        for first in sorted {
            let items = self.acks.complete(first);
            if items.is_empty() {
                continue;
            }
            self.progress.next_lsn.store(self.acks.next_lsn(), Ordering::Release);
            self.progress.syncs.store(self.acks.released(), Ordering::Relaxed);
            for (done, appended, since) in items {
                metrics::histogram!(m::WAL_ACK_SECONDS).record(since.elapsed().as_secs_f64());
                done(Ok(appended));
            }
        }
    }

    /// Fails the object starting at `first` (if any) and everything after
    /// it, and refuses every later append.
    fn poison(&mut self, e: WalError, first: Option<u64>) {
        tracing::error!(error = %e, "object WAL failed; refusing further appends until restart");
        let failed = match first {
            Some(f) => self.acks.fail(f),
            None => self.acks.fail(self.acks.next_lsn()),
        };
        if self.poisoned.is_none() {
            self.progress.set_failed(&e.to_string());
            self.poisoned = Some(e);
        }
        self.fail_all(failed);
    }

    fn fail_all(&self, items: Vec<Pending>) {
        for (done, _, _) in items {
            done(Err(self.poisoned.as_ref().map_or_else(
                || WalError::Poisoned("an earlier object failed".into()),
                again,
            )));
        }
    }

    fn trim(&mut self, lsn: u64, checkpoint: Option<Bytes>, done: oneshot::Sender<Result<u64, WalError>>) {
        let lsn = lsn.min(self.acks.next_lsn());
        let (remote, epoch, objects, progress, lock) = (
            self.remote.clone(),
            self.epoch,
            self.objects.clone(),
            self.progress.clone(),
            self.trims.clone(),
        );
        tokio::spawn(async move {
            let _serial = lock.lock().await;
            let _ = done.send(trim(&remote, epoch, &objects, &progress, lsn, checkpoint).await);
        });
    }
}

/// Persists the trim point (with the checkpoint), then deletes dead
/// objects and older checkpoints. A failed delete leaves an object that
/// recovery ignores.
async fn trim(
    remote: &Remote,
    epoch: u64,
    objects: &Objects,
    progress: &Progress,
    lsn: u64,
    checkpoint: Option<Bytes>,
) -> Result<u64, WalError> {
    let current = progress.trim_lsn.load(Ordering::Acquire);
    if lsn <= current {
        return Ok(current);
    }
    // A fenced writer deletes nothing: its successor owns the log.
    if let Some(newer) = newer_epoch(remote, epoch).await? {
        return Err(WalError::Fenced { epoch, newer });
    }
    remote
        .put(&checkpoint_path(remote, lsn), checkpoint.unwrap_or_default())
        .await
        .map_err(remote_err)?;
    // Checked again once the checkpoint is visible: a successor that claims
    // after this check lists the checkpoint, so it never replays (or
    // indexes) an object deleted below. Only then may later objects carry
    // the new trim point (a successor that missed the checkpoint must not
    // find it in a header).
    if let Some(newer) = newer_epoch(remote, epoch).await? {
        return Err(WalError::Fenced { epoch, newer });
    }
    progress.trim_lsn.store(lsn, Ordering::Release);
    for key in objects.remove_below(lsn) {
        if let Err(e) = remote.delete(&key_path(remote, &key)).await {
            metrics::counter!(m::WAL_OBJECT_DELETE_ERRORS).increment(1);
            tracing::warn!(%key, error = %e, "could not delete a trimmed WAL object; recovery ignores it");
        }
    }
    match checkpoints_below(remote, lsn).await {
        Ok(old) => {
            for p in old {
                if let Err(e) = remote.delete(&p).await {
                    tracing::warn!(key = %p, error = %e, "could not delete an old WAL checkpoint");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list old WAL checkpoints"),
    }
    Ok(lsn)
}

/// A newer epoch's claim, if any exists.
async fn newer_epoch(remote: &Remote, epoch: u64) -> Result<Option<u64>, WalError> {
    let after = remote.path(&format!("{EPOCHS_DIR}/{epoch:010}.start"));
    let listed = remote.list_after(EPOCHS_DIR, &after).await.map_err(remote_err)?;
    Ok(listed
        .iter()
        .filter_map(|m| m.location.filename()?.split('.').next()?.parse::<u64>().ok())
        .filter(|e| *e > epoch)
        .max())
}

fn again(e: &WalError) -> WalError {
    match e {
        WalError::Fenced { epoch, newer } => WalError::Fenced {
            epoch: *epoch,
            newer: *newer,
        },
        other => WalError::Poisoned(other.to_string()),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Waits for the task in `h`; never completes when there is none.
async fn join<T>(h: &mut Option<tokio::task::JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match h {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}
