//! The sync thread: makes written groups durable while the writer writes
//! the next ones, and runs their completions.
//!
//! The writer hands a group here once it is written (big groups, and every
//! group while earlier ones are still here, so completions keep their
//! order). The thread takes every group handed over since its last sync,
//! syncs each file they were written to, then completes them.
//!
//! Invariants:
//! * Groups arrive in LSN order; their completions run in that order, on
//!   this thread, only after an fdatasync that started after the group's
//!   write returned.
//! * After a failed sync, or a group the writer failed, every later group
//!   fails (`Poisoned`): nothing after a hole is acknowledged. The failure is
//!   published in `Progress::failed`, which the writer checks before writing.
//! * `in_flight` counts groups handed over and not yet completed; the writer
//!   completes a group itself only when it is zero.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use super::error::WalError;
use super::writer::{Completion, Progress};
use super::{Appended, Faults};

/// One written group, waiting for its sync.
pub struct Written {
    pub file: Arc<File>,
    pub path: PathBuf,
    /// Completions with their outcomes, in LSN order.
    pub acks: Vec<(Completion, Appended)>,
    /// The LSN after the group's last entry.
    pub next_lsn: u64,
    /// Set when the writer failed this group: no sync, every ack fails.
    pub failed: Option<WalError>,
}

/// The writer's end of the sync thread.
pub struct Syncer {
    tx: Option<mpsc::Sender<Written>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub in_flight: Arc<AtomicUsize>,
}

impl Syncer {
    pub fn start(progress: Arc<Progress>, faults: Faults) -> std::io::Result<Syncer> {
        let (tx, rx) = mpsc::channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let counted = in_flight.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-wal-sync".into())
            .spawn(move || run(rx, &progress, &counted, &faults))?;
        Ok(Syncer {
            tx: Some(tx),
            thread: Some(thread),
            in_flight,
        })
    }

    /// Whether groups handed over are still waiting to be completed.
    pub fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// Hands a written group over. If the thread is gone (it never exits
    /// while the writer lives), the group fails here.
    pub fn hand_over(&self, w: Written) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let Some(tx) = &self.tx else {
            fail_all(w.acks, WalError::Closed);
            return;
        };
        if let Err(mpsc::SendError(w)) = tx.send(w) {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            fail_all(w.acks, WalError::Closed);
        }
    }

    /// Waits until every group handed over is completed.
    pub fn finish(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("WAL sync thread panicked");
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.finish();
    }
}

fn fail_all(acks: Vec<(Completion, Appended)>, e: WalError) {
    let why = e.to_string();
    let mut first = Some(e);
    for (done, _) in acks {
        done(Err(first.take().unwrap_or_else(|| WalError::Poisoned(why.clone()))));
    }
}

fn run(rx: mpsc::Receiver<Written>, progress: &Progress, in_flight: &AtomicUsize, faults: &Faults) {
    let mut poisoned: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let n = batch.len();
        // Groups up to the first the writer failed are synced together.
        let good = batch.iter().take_while(|w| w.failed.is_none()).count();
        let mut result = Ok(());
        if poisoned.is_none() {
            let started = std::time::Instant::now();
            let mut synced: Option<&Arc<File>> = None;
            for w in &batch[..good] {
                if synced.is_some_and(|f| Arc::ptr_eq(f, &w.file)) {
                    continue;
                }
                let outcome = if faults.sync_fails() {
                    Err(std::io::Error::other("injected failure (wal::sync::err)"))
                } else {
                    w.file.sync_data()
                };
                if let Err(e) = outcome {
                    result = Err(WalError::io("fdatasync segment", &w.path, e));
                    break;
                }
                progress.syncs.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(crate::metrics::WAL_FSYNCS).increment(1);
                synced = Some(&w.file);
            }
            metrics::histogram!(crate::metrics::WAL_FSYNC_SECONDS).record(started.elapsed().as_secs_f64());
        }
        for (i, w) in batch.into_iter().enumerate() {
            if let Some(why) = &poisoned {
                fail_all(w.acks, WalError::Poisoned(why.clone()));
                continue;
            }
            let failed = match (&mut result, w.failed) {
                (_, Some(e)) => Some(e),
                (Err(_), None) => std::mem::replace(&mut result, Ok(())).err(),
                (Ok(()), None) if i < good => None,
                // After a group the writer failed: never synced.
                (Ok(()), None) => Some(WalError::Poisoned("an earlier group failed".into())),
            };
            match failed {
                None => {
                    progress.next_lsn.store(w.next_lsn, Ordering::Release);
                    for (done, appended) in w.acks {
                        done(Ok(appended));
                    }
                }
                Some(e) => {
                    let why = e.to_string();
                    tracing::error!(error = %why, "WAL write failed; refusing further appends until restart");
                    progress.set_failed(&why);
                    poisoned = Some(why);
                    fail_all(w.acks, e);
                }
            }
        }
        in_flight.fetch_sub(n, Ordering::AcqRel);
    }
}
