//! The object-store WAL backend: opening (epoch claim, recovery) and reads
//! (docs/design/0004-object-wal.md). The writer task is in
//! [`super::object_writer`].
//!
//! Layout under the node's prefix:
//! * `wal/objects/<first_lsn:020>-<epoch:010>.obj`: one object per group of
//!   appends ([`super::object_format`]);
//! * `wal/epochs/`: writer epochs (claims, starts, histories; see
//!   [`super::object_epochs`]);
//! * `wal/checkpoints/<trim_lsn:020>`: the trim point, persisted before any
//!   object is deleted, holding the log's metadata snapshot as of the trim
//!   (so a node with an empty data dir gets back what the trim removed).
//!
//! Invariants: the claim is created before anything is listed, so a writer
//! fenced by it acknowledges nothing that this recovery did not see;
//! recovery replays exactly [`object_recovery::plan`]'s prefix, cut short
//! at the first object whose body does not decode; nothing but dead
//! objects (wholly below the trim point) is ever deleted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::error::{Corruption, WalError};
use super::format::ENTRY_HEADER_LEN;
use super::object_epochs;
use super::object_format::{OBJECT_HEADER_LEN, decode_header, decode_object, object_key, parse_object_key};
use super::object_recovery::{Claim, Listed, Plan, plan};
use super::recovery::{Cut, Location, Recovered, RecoveredEntry};
use crate::objstore::{ObjStoreError, Remote};

pub const OBJECTS_DIR: &str = "wal/objects";
pub use super::object_epochs::EPOCHS_DIR;
pub const CHECKPOINTS_DIR: &str = "wal/checkpoints";

/// Tuning of the object-store WAL.
#[derive(Debug, Clone)]
pub struct ObjectOptions {
    /// An object is sealed and uploaded this long after its first append...
    pub interval: Duration,
    /// ...or once it holds this many bytes, whichever comes first.
    pub max_bytes: usize,
    /// Objects uploading at once; beyond that, appends wait in the queue.
    pub in_flight: usize,
}

impl Default for ObjectOptions {
    fn default() -> Self {
        ObjectOptions {
            interval: Duration::from_millis(250),
            max_bytes: 8 * 1024 * 1024,
            in_flight: 4,
        }
    }
}

pub(crate) fn remote_err(e: ObjStoreError) -> WalError {
    WalError::Remote(e.to_string())
}

/// A live object: its key and last LSN.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub key: String,
    pub last: u64,
}

/// The live objects by first LSN, shared by the writer (inserts once an
/// object is durable, removes on trim) and readers.
#[derive(Debug, Default)]
pub(crate) struct Objects {
    map: Mutex<BTreeMap<u64, Live>>,
}

impl Objects {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Live>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, first: u64, live: Live) {
        self.lock().insert(first, live);
    }

    pub fn key(&self, first: u64) -> Option<String> {
        self.lock().get(&first).map(|l| l.key.clone())
    }

    pub fn firsts(&self) -> Vec<u64> {
        self.lock().keys().copied().collect()
    }

    /// Removes and returns the keys of objects wholly below `lsn`.
    pub fn remove_below(&self, lsn: u64) -> Vec<String> {
        let mut map = self.lock();
        let dead: Vec<u64> = map.iter().filter(|(_, l)| l.last < lsn).map(|(f, _)| *f).collect();
        dead.into_iter().filter_map(|f| map.remove(&f)).map(|l| l.key).collect()
    }
}

/// Range reads of entries in live objects.
pub(crate) struct Reader {
    pub remote: Remote,
    pub objects: Arc<Objects>,
    pub runtime: tokio::runtime::Handle,
}

impl Reader {
    /// Reads the entry at `location` (object first LSN + byte range).
    /// Blocking: call from a blocking thread, never from an async task.
    pub fn read(&self, lsn: u64, location: Location) -> Result<Bytes, WalError> {
        let key = self.objects.key(location.segment).ok_or(WalError::Trimmed { lsn })?;
        let path = key_path(&self.remote, &key);
        let range = location.pos..location.pos + u64::from(location.len);
        let buf = match self.runtime.block_on(self.remote.get_range(&path, range)) {
            Ok(b) => b,
            // Deleted by a trim (this node's, or a fenced predecessor's
            // that had tiered it): the reader re-plans from the store.
            Err(e) if e.is_not_found() => return Err(WalError::Trimmed { lsn }),
            Err(e) => return Err(remote_err(e)),
        };
        super::check_entry(lsn, buf, location.pos, || PathBuf::from(&key))
    }
}

/// What an object-store WAL found before replay: its epoch, the recovery
/// plan and the newest checkpoint.
pub struct Prepared {
    remote: Remote,
    epoch: u64,
    plan: Plan,
    /// Every older epoch that started, with its start.
    claims: Vec<Claim>,
    /// Trim LSN of the newest checkpoint (0: none).
    checkpoint_lsn: u64,
    checkpoint: Option<Bytes>,
}

/// Claims a new epoch (fencing every older writer), then lists the objects
/// and reads their headers and the newest checkpoint, and plans recovery.
pub async fn prepare(remote: &Remote) -> Result<Prepared, WalError> {
    let epoch = object_epochs::claim(remote).await?;
    let claims = object_epochs::older_claims(remote, epoch).await?;
    let (floor, checkpoint) = newest_checkpoint(remote).await?;
    let objects = remote.list(OBJECTS_DIR).await.map_err(remote_err)?;
    let listed: Vec<Listed> = futures::stream::iter(objects.into_iter().filter_map(|m| {
        let name = m.location.filename()?.to_string();
        let (first_lsn, epoch) = parse_object_key(&name)?;
        Some((name, first_lsn, epoch, m.location))
    }))
    .map(|(key, first_lsn, epoch, path)| async move {
        let header = match remote.get_range(&path, 0..OBJECT_HEADER_LEN as u64).await {
            Ok(b) => decode_header(&b),
            Err(ObjStoreError::Corrupt { .. }) => Err(Corruption::Truncated),
            // Deleted since the listing: by a trim whose checkpoint this
            // recovery read (so the object is dead), else the chain stops.
            Err(e) if e.is_not_found() => Err(Corruption::Object("deleted since the listing".into())),
            Err(e) => return Err(remote_err(e)),
        };
        Ok(Listed {
            key,
            first_lsn,
            epoch,
            header,
        })
    })
    .buffered(16)
    .try_collect()
    .await?;
    let plan = plan(listed, &claims, floor);
    Ok(Prepared {
        remote: remote.clone(),
        epoch,
        plan,
        claims,
        checkpoint_lsn: floor,
        checkpoint,
    })
}

/// The newest checkpoint's trim LSN and snapshot (empty body: none).
async fn newest_checkpoint(remote: &Remote) -> Result<(u64, Option<Bytes>), WalError> {
    let newest = remote
        .list(CHECKPOINTS_DIR)
        .await
        .map_err(remote_err)?
        .into_iter()
        .filter_map(|m| Some((m.location.filename()?.parse::<u64>().ok()?, m.location)))
        .max_by_key(|(lsn, _)| *lsn);
    let Some((lsn, path)) = newest else {
        return Ok((0, None));
    };
    let body = remote
        .get(&path)
        .await
        .map_err(remote_err)?
        .ok_or_else(|| WalError::Remote(format!("WAL checkpoint {path} vanished while starting; start again")))?;
    Ok((lsn, Some(body).filter(|b| !b.is_empty())))
}

/// Keys of checkpoints older than `lsn`.
pub(crate) async fn checkpoints_below(remote: &Remote, lsn: u64) -> Result<Vec<object_store::path::Path>, WalError> {
    Ok(remote
        .list(CHECKPOINTS_DIR)
        .await
        .map_err(remote_err)?
        .into_iter()
        .filter(|m| {
            m.location
                .filename()
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|l| l < lsn)
        })
        .map(|m| m.location)
        .collect())
}

pub(crate) fn checkpoint_path(remote: &Remote, lsn: u64) -> object_store::path::Path {
    remote.path(&format!("{CHECKPOINTS_DIR}/{lsn:020}"))
}

/// The outcome of [`Prepared::replay`]: what the writer starts from.
pub(crate) struct Replayed {
    pub remote: Remote,
    pub epoch: u64,
    pub objects: Arc<Objects>,
    pub recovered: Recovered,
}

impl Prepared {
    /// The metadata snapshot stored with the newest trim, if any.
    pub fn checkpoint(&self) -> Option<&Bytes> {
        self.checkpoint.as_ref()
    }

    /// The epoch this writer claimed.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The trim point recovery starts from (the newest checkpoint's, or a
    /// later one found in an object header if checkpoints were lost).
    pub fn trim_lsn(&self) -> u64 {
        self.plan.trim_lsn
    }

    /// The trim LSN of the checkpoint whose snapshot [`Prepared::checkpoint`]
    /// returns (0: none).
    pub fn checkpoint_lsn(&self) -> u64 {
        self.checkpoint_lsn
    }

    /// Replays the planned objects through `visit`, records where this
    /// epoch starts and deletes dead objects.
    pub(crate) async fn replay(self, visit: &mut dyn FnMut(RecoveredEntry<'_>)) -> Result<Replayed, WalError> {
        let Prepared {
            remote,
            epoch,
            plan,
            claims,
            ..
        } = self;
        let objects = Arc::new(Objects::default());
        let mut next_lsn = plan.next_lsn;
        let trim_lsn = plan.trim_lsn;
        let mut entries = 0u64;
        let mut cut = plan.cut.as_ref().map(|(key, why)| object_cut(key, why, &plan.ignored));
        let mut bodies = futures::stream::iter(plan.replay.iter().cloned())
            .map(|key| {
                let remote = remote.clone();
                async move {
                    let path = key_path(&remote, &key);
                    (key, remote.get(&path).await)
                }
            })
            .buffered(4);
        while let Some((key, body)) = bodies.next().await {
            let decoded = match body.map_err(remote_err)? {
                Some(b) => decode_object(&b).map(|d| (b, d)).map_err(|c| c.to_string()),
                // Listed, then gone: only a trim racing this start-up can
                // do that (dead objects are not fetched). Cutting here
                // could drop acknowledged entries: fail, and start again.
                None => {
                    return Err(WalError::Remote(format!(
                        "WAL object {key} disappeared during recovery; start again"
                    )));
                }
            };
            let (bytes, (header, list)) = match decoded {
                Ok(d) => d,
                Err(why) => {
                    // Cut here: this object and everything after it.
                    next_lsn = parse_object_key(&key).map_or(next_lsn, |(f, _)| f.max(trim_lsn));
                    let rest: Vec<String> = plan.replay.iter().skip_while(|k| **k != key).cloned().collect();
                    cut = Some(object_cut(&key, &why, &rest));
                    break;
                }
            };
            for e in list.iter().filter(|e| e.lsn >= trim_lsn) {
                let pos = e.payload_pos - ENTRY_HEADER_LEN;
                visit(RecoveredEntry {
                    lsn: e.lsn,
                    meta: e.meta,
                    payload: &bytes[e.payload_pos..e.payload_pos + e.payload_len],
                    location: Location {
                        segment: header.first_lsn,
                        pos: pos as u64,
                        len: (ENTRY_HEADER_LEN + e.payload_len) as u32,
                    },
                });
                entries += 1;
            }
            objects.insert(
                header.first_lsn,
                Live {
                    key,
                    last: header.last_lsn,
                },
            );
        }
        drop(bodies);
        if let Some(c) = &cut {
            tracing::warn!(object = %c.segment.display(), reason = %c.reason, ignored = c.dropped_files.len(),
                "object WAL recovery stopped early; later objects are ignored (kept, not deleted)");
        }
        object_epochs::record_start(&remote, epoch, next_lsn, &claims).await?;
        if !plan.dead.is_empty() {
            let (r, dead) = (remote.clone(), plan.dead.clone());
            tokio::spawn(async move {
                for key in dead {
                    if let Err(e) = r.delete(&key_path(&r, &key)).await {
                        tracing::warn!(%key, error = %e, "could not delete a trimmed WAL object; it is ignored");
                    }
                }
            });
        }
        tracing::info!(
            epoch,
            next_lsn,
            trim_lsn = plan.trim_lsn,
            objects = plan.replay.len(),
            zombies = plan.zombies.len(),
            "object WAL recovered"
        );
        Ok(Replayed {
            remote,
            epoch,
            objects,
            recovered: Recovered {
                next_lsn,
                trim_lsn,
                segments: Vec::new(),
                tail_len: 0,
                entries,
                cut,
                spares: Vec::new(),
            },
        })
    }
}

fn object_cut(key: &str, why: &str, ignored: &[String]) -> Cut {
    Cut {
        segment: PathBuf::from(key),
        pos: 0,
        reason: Corruption::Object(why.to_string()),
        dropped_files: ignored.iter().map(PathBuf::from).collect(),
    }
}

/// The key of the object starting at `first_lsn` written under `epoch`.
pub(crate) fn object_path(remote: &Remote, first_lsn: u64, epoch: u64) -> (String, object_store::path::Path) {
    let key = object_key(first_lsn, epoch);
    let path = key_path(remote, &key);
    (key, path)
}

/// Where the object named `key` lives.
pub(crate) fn key_path(remote: &Remote, key: &str) -> object_store::path::Path {
    remote.path(&format!("{OBJECTS_DIR}/{key}"))
}
