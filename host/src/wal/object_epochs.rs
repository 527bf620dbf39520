//! Writer epochs of the object-store WAL: claiming one, learning every
//! older epoch's start, recording this writer's start, and keeping
//! `wal/epochs/` small (docs/design/0004-object-wal.md).
//!
//! Objects under `wal/epochs/` (`<epoch:010>` names):
//! * `.claim`: created if absent by a writer taking over; its existence
//!   fences every older writer (the fence check lists claims newer than
//!   its own);
//! * `.start`: the first LSN that writer writes (decimal), or `never` for
//!   an epoch a newer writer closed off before it started;
//! * `.history`: written by a writer once its start is stored: every
//!   epoch that started, up to and including its own, with its start
//!   LSN (one `<epoch> <start>` line each, after a version line).
//!
//! Invariants:
//! * the set of (epoch, start) pairs recovery's zombie rule sees is the
//!   same with or without the garbage collection below: a history holds
//!   every started epoch up to its writer (minus pairs another pair
//!   implies, which change no zombie decision), so what it replaces
//!   carries no information;
//! * a `never` start is never deleted: it is what stops a slow opener
//!   that lost the race from writing a late start (which could turn a
//!   newer writer's acknowledged objects into "zombies");
//! * the newest writer's own claim, start and history are never deleted
//!   by itself: older writers' fence checks must find its claim.
//!
//! So start-up reads one history and the few epochs newer than it,
//! however many times the node restarted before.

use bytes::Bytes;

use super::error::WalError;
use super::object::remote_err;
use super::object_recovery::Claim;
use crate::objstore::Remote;

pub const EPOCHS_DIR: &str = "wal/epochs";

/// What a `.start` holds for an epoch that never started writing (closed
/// off by a newer writer before its own `.start` landed).
const NEVER_STARTED: &str = "never";

/// First line of a `.history`.
const HISTORY_VERSION: &str = "sluice-wal-epochs 1";

/// How often reading the older epochs starts over because a newer
/// writer's garbage collection removed a file between the listing and
/// the read.
const READ_ATTEMPTS: usize = 8;

fn path(remote: &Remote, epoch: u64, suffix: &str) -> object_store::path::Path {
    remote.path(&format!("{EPOCHS_DIR}/{epoch:010}.{suffix}"))
}

/// `(epoch, suffix)` of every file under `wal/epochs/`.
async fn list(remote: &Remote) -> Result<Vec<(u64, String)>, WalError> {
    Ok(remote
        .list(EPOCHS_DIR)
        .await
        .map_err(remote_err)?
        .iter()
        .filter_map(|m| {
            let (epoch, suffix) = m.location.filename()?.split_once('.')?;
            Some((epoch.parse::<u64>().ok()?, suffix.to_string()))
        })
        .collect())
}

/// Creates the claim of the next free epoch.
pub(crate) async fn claim(remote: &Remote) -> Result<u64, WalError> {
    let newest = list(remote).await?.iter().map(|(e, _)| *e).max().unwrap_or(0);
    for epoch in newest + 1..newest.saturating_add(65) {
        if remote
            .put_if_absent(&path(remote, epoch, "claim"), Bytes::new())
            .await
            .map_err(remote_err)?
        {
            return Ok(epoch);
        }
    }
    Err(WalError::Remote(format!(
        "could not claim a WAL epoch above {newest}: other writers keep taking them"
    )))
}

/// Every older epoch that started, with its start LSN: the newest history
/// below `epoch`, plus each claim newer than it. Closes off each older
/// claim that has no start yet (see [`NEVER_STARTED`]).
pub(crate) async fn older_claims(remote: &Remote, epoch: u64) -> Result<Vec<Claim>, WalError> {
    for _ in 0..READ_ATTEMPTS {
        if let Some(claims) = read_older(remote, epoch).await? {
            return Ok(claims);
        }
    }
    Err(WalError::Remote(format!(
        "the WAL epochs below {epoch} kept changing while they were read; start again"
    )))
}

/// One attempt of [`older_claims`]; `None` if a file vanished (a newer
/// writer's collection, whose history the next listing shows).
async fn read_older(remote: &Remote, epoch: u64) -> Result<Option<Vec<Claim>>, WalError> {
    let names = list(remote).await?;
    let has = |e: u64, suffix: &str| names.iter().any(|(n, s)| *n == e && s == suffix);
    let history = names
        .iter()
        .filter(|(e, s)| *e < epoch && s == "history")
        .map(|(e, _)| *e)
        .max();
    let mut claims = Vec::new();
    if let Some(h) = history {
        let p = path(remote, h, "history");
        let Some(body) = remote.get(&p).await.map_err(remote_err)? else {
            return Ok(None);
        };
        claims = parse_history(&body).ok_or_else(|| {
            WalError::Remote(format!("WAL epoch history {p} is unreadable; fix or remove it by hand"))
        })?;
    }
    let covered = history.unwrap_or(0);
    let mut older: Vec<u64> = names
        .iter()
        .filter(|(e, s)| *e > covered && *e < epoch && s == "claim")
        .map(|(e, _)| *e)
        .collect();
    older.sort_unstable();
    for e in older {
        let p = path(remote, e, "start");
        if !has(e, "start")
            && remote
                .put_if_absent(&p, Bytes::from_static(NEVER_STARTED.as_bytes()))
                .await
                .map_err(remote_err)?
        {
            tracing::info!(epoch = e, "closed off a WAL epoch that never started");
            continue;
        }
        let Some(body) = remote.get(&p).await.map_err(remote_err)? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&body).map(str::trim);
        match text.map(|t| (t, t.parse::<u64>())) {
            Ok((NEVER_STARTED, _)) => {}
            Ok((_, Ok(start_lsn))) => claims.push(Claim { epoch: e, start_lsn }),
            // Without it, its predecessors' late objects could not be told
            // from acknowledged data: refuse rather than guess.
            _ => {
                return Err(WalError::Remote(format!(
                    "WAL epoch start {p} is unreadable; fix or remove it by hand"
                )));
            }
        }
    }
    Ok(Some(claims))
}

/// Records that `epoch` writes from `next_lsn` (failing if a newer writer
/// closed it off first), then stores its history and, in the background,
/// deletes what the history replaces.
pub(crate) async fn record_start(remote: &Remote, epoch: u64, next_lsn: u64, older: &[Claim]) -> Result<(), WalError> {
    let start = path(remote, epoch, "start");
    let value = next_lsn.to_string();
    if !remote
        .put_if_absent(&start, Bytes::from(value.clone()))
        .await
        .map_err(remote_err)?
    {
        // Ours if a retried create landed twice; else a newer writer
        // closed this epoch off: it owns the log now.
        let found = remote.get(&start).await.map_err(remote_err)?;
        if found.as_deref() != Some(value.as_bytes()) {
            return Err(WalError::Remote(format!(
                "a newer writer took over WAL epoch {epoch} before it started"
            )));
        }
    }
    let mut all = older.to_vec();
    all.push(Claim {
        epoch,
        start_lsn: next_lsn,
    });
    let all = prune(all);
    // Without a history nothing is collected: the next start reads the
    // claims one by one, as before.
    if let Err(e) = remote.put(&path(remote, epoch, "history"), encode_history(&all)).await {
        tracing::warn!(epoch, error = %e, "could not store the WAL epoch history; older epochs are kept");
        return Ok(());
    }
    let (remote, started) = (remote.clone(), all);
    tokio::spawn(async move {
        if let Err(e) = collect(&remote, epoch, &started).await {
            tracing::warn!(epoch, error = %e, "could not clean up older WAL epochs; they are kept");
        }
    });
    Ok(())
}

/// Deletes the claims, histories and numeric starts of epochs below
/// `epoch`; every epoch that started is in `started` or implied by a pair
/// there. `never` starts (and any start that cannot be read) stay.
async fn collect(remote: &Remote, epoch: u64, started: &[Claim]) -> Result<(), WalError> {
    let mut deleted = 0u64;
    for (e, suffix) in list(remote).await? {
        if e >= epoch || suffix == "start" && !started.iter().any(|c| c.epoch == e) && !numeric_start(remote, e).await {
            continue;
        }
        remote.delete(&path(remote, e, &suffix)).await.map_err(remote_err)?;
        deleted += 1;
    }
    if deleted > 0 {
        tracing::debug!(epoch, deleted, "older WAL epoch files removed");
    }
    Ok(())
}

/// Whether epoch `e`'s start holds an LSN (not `never`, and readable).
async fn numeric_start(remote: &Remote, e: u64) -> bool {
    match remote.get(&path(remote, e, "start")).await {
        Ok(Some(b)) => std::str::from_utf8(&b).is_ok_and(|t| t.trim().parse::<u64>().is_ok()),
        Ok(None) | Err(_) => false,
    }
}

/// Drops every pair another pair implies: `(e, s)` when some newer epoch
/// started at or below `s` (any object that `(e, s)` makes a zombie, the
/// newer pair does too). Sorted by epoch.
fn prune(mut claims: Vec<Claim>) -> Vec<Claim> {
    claims.sort_unstable_by_key(|c| c.epoch);
    claims.dedup_by_key(|c| c.epoch);
    let mut kept: Vec<Claim> = Vec::with_capacity(claims.len());
    for c in claims.into_iter().rev() {
        if kept.iter().all(|n| n.start_lsn > c.start_lsn) {
            kept.push(c);
        }
    }
    kept.reverse();
    kept
}

fn encode_history(claims: &[Claim]) -> Bytes {
    let mut s = format!("{HISTORY_VERSION}\n");
    for c in claims {
        s.push_str(&format!("{} {}\n", c.epoch, c.start_lsn));
    }
    Bytes::from(s)
}

fn parse_history(body: &[u8]) -> Option<Vec<Claim>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut lines = text.lines();
    if lines.next()? != HISTORY_VERSION {
        return None;
    }
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (e, s) = l.trim().split_once(' ')?;
            Some(Claim {
                epoch: e.parse().ok()?,
                start_lsn: s.parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(epoch: u64, start_lsn: u64) -> Claim {
        Claim { epoch, start_lsn }
    }

    #[test]
    fn pruning_keeps_exactly_the_pairs_that_decide_zombies() {
        // Restarts without writes in between repeat a start: only the
        // newest epoch of each start matters.
        let p = prune(vec![c(3, 10), c(1, 0), c(2, 10), c(4, 25), c(5, 25)]);
        assert_eq!(p, vec![c(1, 0), c(3, 10), c(5, 25)]);
        // A newer epoch that started lower (a cut) implies every older one
        // at or above it.
        assert_eq!(prune(vec![c(1, 5), c(2, 30), c(3, 20)]), vec![c(1, 5), c(3, 20)]);
        // Same decisions as the full set, for objects of every epoch and LSN.
        let full = vec![c(1, 0), c(2, 10), c(3, 10), c(4, 7), c(5, 40), c(6, 40)];
        let pruned = prune(full.clone());
        let zombie =
            |set: &[Claim], epoch: u64, first: u64| set.iter().any(|c| c.epoch > epoch && first >= c.start_lsn);
        for epoch in 0..8 {
            for first in 0..50 {
                assert_eq!(
                    zombie(&full, epoch, first),
                    zombie(&pruned, epoch, first),
                    "{epoch} {first}"
                );
            }
        }
    }

    #[test]
    fn history_round_trips_and_rejects_damage() {
        let claims = vec![c(1, 1), c(7, 120)];
        assert_eq!(parse_history(&encode_history(&claims)), Some(claims));
        assert_eq!(parse_history(b"sluice-wal-epochs 1\n"), Some(Vec::new()));
        assert_eq!(parse_history(b"sluice-wal-epochs 2\n1 1\n"), None);
        assert_eq!(parse_history(b"sluice-wal-epochs 1\n1 x\n"), None);
        assert_eq!(parse_history(b"\xff"), None);
    }
}
