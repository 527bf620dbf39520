//! The next segment file, prepared ahead on a thread of its own: written
//! full of zeros to `segment_bytes` and synced while the active segment
//! fills, so the writer rolls into a file whose blocks are allocated and
//! written. Syncs then overwrite blocks of a file whose size does not
//! change (no metadata to commit), for groups of every size, and no zeros
//! are written ahead on the commit path.
//!
//! Invariants:
//! * A prepared file has a temporary name (`*.tmp`, removed by recovery)
//!   until it is installed: its header written and synced, then renamed to
//!   the segment's final name and the directory synced, so a file with a
//!   final name always has a complete header, as with `create_segment`.
//! * At most one preparation runs per WAL; the writer cancels it (and
//!   waits for it) before it stops, so no thread writes into the WAL
//!   directory after the writer is gone.
//! * A failed preparation costs nothing but the fallback: the writer then
//!   creates the segment as usual.
//! * A trimmed segment kept as a spare (`*.spare`) is prepared by making it
//!   `segment_bytes` long (zeros only where it is shorter) and syncing that:
//!   its blocks are written already. Its header then says it is recycled,
//!   because its earlier entries follow the new ones (`recovery.rs`). A
//!   cancelled recycling leaves the spare in place.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::error::WalError;
use super::segment::install_segment;

/// Zeros written per call while preparing.
const CHUNK: usize = 1024 * 1024;

/// A zero-filled, synced file waiting to become the next segment.
pub struct Prepared {
    path: PathBuf,
    file: File,
    len: u64,
    recycled: bool,
}

/// A preparation running on its thread.
pub struct Preparing {
    stop: Arc<AtomicBool>,
    path: PathBuf,
    recycled: bool,
    handle: JoinHandle<Result<Prepared, WalError>>,
}

impl Preparing {
    /// Starts preparing a file of `len` bytes in `dir`.
    pub fn start(dir: &Path, len: u64) -> Result<Preparing, WalError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = dir.join(format!("prepared-{nanos}.wal.tmp"));
        Self::spawn(dir, path, len, false)
    }

    /// Starts preparing the spare at `spare` (a trimmed segment) as a file
    /// of `len` bytes.
    pub fn recycle(dir: &Path, spare: PathBuf, len: u64) -> Result<Preparing, WalError> {
        Self::spawn(dir, spare, len, true)
    }

    fn spawn(dir: &Path, path: PathBuf, len: u64, recycled: bool) -> Result<Preparing, WalError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_path, thread_stop) = (path.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("sluice-wal-prep".into())
            .spawn(move || prepare(thread_path, len, recycled, &thread_stop))
            .map_err(|e| WalError::io("start segment preparation thread", dir, e))?;
        Ok(Preparing {
            stop,
            path,
            recycled,
            handle,
        })
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the preparation and returns its file.
    pub fn join(self) -> Result<Prepared, WalError> {
        match self.handle.join() {
            Ok(r) => r,
            Err(_) => Err(WalError::io(
                "prepare segment",
                &self.path,
                std::io::Error::other("preparation thread panicked"),
            )),
        }
    }

    /// Stops the preparation, waits for its thread and removes its file (a
    /// spare stays, for the next start).
    pub fn cancel(self) {
        self.stop.store(true, Ordering::Relaxed);
        let (path, recycled) = (self.path.clone(), self.recycled);
        let _ = self.join();
        if !recycled {
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn prepare(path: PathBuf, len: u64, recycled: bool, stop: &AtomicBool) -> Result<Prepared, WalError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(!recycled)
        .open(&path)
        .map_err(|e| WalError::io("create prepared segment", &path, e))?;
    let mut at = if recycled {
        let have = file
            .metadata()
            .map_err(|e| WalError::io("stat spare segment", &path, e))?
            .len();
        if have >= len {
            if have > len {
                file.set_len(len)
                    .map_err(|e| WalError::io("cut spare segment", &path, e))?;
                file.sync_all()
                    .map_err(|e| WalError::io("sync spare segment", &path, e))?;
            }
            return Ok(Prepared {
                path,
                file,
                len,
                recycled,
            });
        }
        have
    } else {
        0
    };
    let zeros = vec![0u8; CHUNK];
    while at < len {
        if stop.load(Ordering::Relaxed) {
            return Err(WalError::io(
                "prepare segment",
                &path,
                std::io::Error::other("cancelled"),
            ));
        }
        let n = (len - at).min(CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], at)
            .map_err(|e| WalError::io("write zeros in prepared segment", &path, e))?;
        at += n as u64;
    }
    file.sync_all()
        .map_err(|e| WalError::io("sync prepared segment", &path, e))?;
    Ok(Prepared {
        path,
        file,
        len,
        recycled,
    })
}

impl Prepared {
    /// Whether this file held an earlier segment.
    pub fn is_recycled(&self) -> bool {
        self.recycled
    }

    /// Makes this file the segment starting at `first_lsn`: header written
    /// and synced, renamed into place, directory synced. Returns the
    /// segment's path, file and file length. On failure the file is
    /// removed.
    pub fn install(self, dir: &Path, first_lsn: u64, trim_lsn: u64) -> Result<(PathBuf, File, u64), WalError> {
        let result = self.install_inner(dir, first_lsn, trim_lsn);
        if result.is_err() {
            let _ = std::fs::remove_file(&self.path);
        }
        result.map(|path| (path, self.file, self.len))
    }

    fn install_inner(&self, dir: &Path, first_lsn: u64, trim_lsn: u64) -> Result<PathBuf, WalError> {
        let dir_handle = File::open(dir).map_err(|e| WalError::io("open WAL directory", dir, e))?;
        install_segment(
            &dir_handle,
            dir,
            &self.path,
            &self.file,
            first_lsn,
            trim_lsn,
            self.recycled,
        )
    }
}
