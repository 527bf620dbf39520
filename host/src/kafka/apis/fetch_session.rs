//! Fetch sessions (KIP-227, Fetch v7+): a consumer's partitions are kept
//! here between fetches, so it sends only what changed (new partitions,
//! moved offsets, partitions to forget) and is answered only for partitions
//! with something new (records, a moved high watermark, log start or last
//! stable offset, an error); the others are implied.
//!
//! Rules, as Kafka brokers apply them:
//! * epoch 0 opens a session (closing the one named, if any) with the
//!   request's partitions and is answered in full with the new session's
//!   id; epoch -1 closes the one named and is answered in full without a
//!   session (session id 0), as are all requests below v7;
//! * epoch n > 0 continues session `session_id`: unknown (never opened,
//!   closed, or evicted) is FETCH_SESSION_ID_NOT_FOUND, an epoch other than
//!   the one expected INVALID_FETCH_SESSION_EPOCH (the client then opens a
//!   new one); the expected epoch goes 1, 2, … and wraps to 1;
//! * at most `MAX_SESSIONS` sessions and `MAX_CACHED_PARTITIONS`
//!   partitions in them per listener: opening one more evicts the least
//!   recently used, whose client is told FETCH_SESSION_ID_NOT_FOUND at its
//!   next fetch and opens another; a session of more than
//!   `MAX_SESSION_PARTITIONS` is not kept (answered in full without one).
//!
//! A session reads its partitions in its own order, and a partition that
//! answers with records moves to the end of it (as Kafka brokers do), so
//! when the answer's `max_bytes` runs out before the last partition, the
//! next fetches start with those left out: no partition starves behind
//! busier ones.
//!
//! From v13 a fetch names topics by id, and a session keeps them so; a
//! session continued by a fetch that names them the other way is
//! FETCH_SESSION_TOPIC_ID_ERROR (the client opens a new one).
//!
//! Sessions live in memory: a restart (or a leader move to another node)
//! ends them, and clients open new ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::FetchRequest;
use kafka_protocol::messages::fetch_response::PartitionData;
use uuid::Uuid;

use super::super::error::codes;

/// Sessions kept per listener (Kafka's
/// `max.incremental.fetch.session.cache.slots` default).
pub const MAX_SESSIONS: usize = 1000;

/// Partitions one session may hold; a fetch of more is answered in full
/// without a session.
pub const MAX_SESSION_PARTITIONS: usize = 10_000;

/// Partitions all sessions of a listener hold together (about 100 bytes
/// each); past it the least recently used sessions go.
pub const MAX_CACHED_PARTITIONS: usize = 500_000;

/// A partition of a session: what the client asked for last, and what it
/// was last told.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cached {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    pub current_leader_epoch: i32,
    high_watermark: i64,
    log_start_offset: i64,
    last_stable_offset: i64,
}

impl Cached {
    fn new(fetch_offset: i64, max_bytes: i32, current_leader_epoch: i32) -> Cached {
        // Never told anything yet: the first answer includes it.
        Cached {
            fetch_offset,
            max_bytes,
            current_leader_epoch,
            high_watermark: -1,
            log_start_offset: -1,
            last_stable_offset: -1,
        }
    }
}

/// How a fetch names a topic: by name (below v13) or by id (v13+).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Topic {
    Name(Arc<str>),
    Id(Uuid),
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Topic::Name(name) => f.write_str(name),
            Topic::Id(id) => write!(f, "{}", id.simple()),
        }
    }
}

/// A partition key: topic and partition index.
pub(super) type Key = (Topic, i32);

/// What a fetch found for one partition, as far as its session cares (the
/// fields of its answer that say whether it has news), with Kafka's
/// defaults for a partition that answers only an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Found {
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

impl Default for Found {
    fn default() -> Found {
        let d = PartitionData::default();
        Found {
            error_code: d.error_code,
            high_watermark: d.high_watermark,
            last_stable_offset: d.last_stable_offset,
            log_start_offset: d.log_start_offset,
        }
    }
}

struct Session {
    /// Whether its topics are named by id (opened at v13+); a fetch that
    /// names them the other way is FETCH_SESSION_TOPIC_ID_ERROR.
    by_id: bool,
    /// Each partition's place in `order`.
    partitions: HashMap<Key, u64>,
    /// The partitions in read order, under their places; places only
    /// grow, the next is `next_place`.
    order: BTreeMap<u64, (Key, Cached)>,
    next_place: u64,
    next_epoch: i32,
    /// When it was last used, on the listener's use counter (least
    /// recently used goes first).
    used: u64,
}

/// How a fetch is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// In full, session id 0.
    Sessionless,
    /// In full, opening session `id`.
    Opened(i32),
    /// Only changed partitions, continuing session `id`.
    Incremental(i32),
}

impl Mode {
    pub fn session_id(self) -> i32 {
        match self {
            Mode::Sessionless => 0,
            Mode::Opened(id) | Mode::Incremental(id) => id,
        }
    }
}

/// Closes the least recently used sessions (never `keep`) until one more
/// session of `more` partitions fits both caps.
fn make_room(sessions: &mut HashMap<i32, Session>, more: usize, keep: Option<i32>) {
    let opening = usize::from(keep.is_none());
    loop {
        let cached: usize = sessions.values().map(|s| s.partitions.len()).sum();
        let full = sessions.len() + opening > MAX_SESSIONS || cached.saturating_add(more) > MAX_CACHED_PARTITIONS;
        if !full {
            return;
        }
        let oldest = sessions
            .iter()
            .filter(|(id, _)| Some(**id) != keep)
            .min_by_key(|(_, s)| s.used)
            .map(|(id, _)| *id);
        match oldest {
            Some(id) => close(sessions, id),
            None => return,
        }
    }
}

/// Ends session `id`, if open.
impl Session {
    fn new(by_id: bool, partitions: impl IntoIterator<Item = (Key, Cached)>, used: u64) -> Session {
        let mut s = Session {
            by_id,
            partitions: HashMap::new(),
            order: BTreeMap::new(),
            next_place: 0,
            next_epoch: 1,
            used,
        };
        for (key, cached) in partitions {
            s.upsert(key, cached);
        }
        s
    }

    /// Adds `key` at the end, or updates what its client asks of it.
    fn upsert(&mut self, key: Key, update: Cached) {
        match self.cached_mut(&key) {
            Some(c) => {
                c.fetch_offset = update.fetch_offset;
                c.max_bytes = update.max_bytes;
                c.current_leader_epoch = update.current_leader_epoch;
            }
            None => {
                let place = self.next_place;
                self.next_place += 1;
                self.partitions.insert(key.clone(), place);
                self.order.insert(place, (key, update));
            }
        }
    }

    fn cached_mut(&mut self, key: &Key) -> Option<&mut Cached> {
        let place = self.partitions.get(key)?;
        self.order.get_mut(place).map(|(_, c)| c)
    }

    fn remove(&mut self, key: &Key) {
        if let Some(place) = self.partitions.remove(key) {
            self.order.remove(&place);
        }
    }

    /// Moves `key` to the end of the read order.
    fn move_back(&mut self, key: &Key) {
        if let Some(place) = self.partitions.get_mut(key)
            && let Some(entry) = self.order.remove(place)
        {
            *place = self.next_place;
            self.order.insert(self.next_place, entry);
            self.next_place += 1;
        }
    }

    /// The partitions in read order.
    fn listed(&self) -> Vec<(Key, Cached)> {
        self.order.values().cloned().collect()
    }
}

fn close(sessions: &mut HashMap<i32, Session>, id: i32) {
    if sessions.remove(&id).is_some() {
        crate::metrics::kafka_fetch_sessions(-1);
    }
}

#[derive(Default)]
pub(crate) struct FetchSessions {
    sessions: Mutex<HashMap<i32, Session>>,
    /// Ids handed out so far (the next is derived from it).
    issued: std::sync::atomic::AtomicU32,
    /// Counts uses of sessions: the order of last use.
    uses: std::sync::atomic::AtomicU64,
}

impl Drop for FetchSessions {
    fn drop(&mut self) {
        let open = self.sessions.get_mut().map_or(0, |s| s.len());
        crate::metrics::kafka_fetch_sessions(-i32::try_from(open).unwrap_or(i32::MAX));
    }
}

impl FetchSessions {
    /// The partitions a fetch reads, in answer order, and how it is
    /// answered; `Err` with a top-level error code.
    pub(super) fn begin(&self, r: &FetchRequest, version: i16) -> Result<(Mode, Vec<(Key, Cached)>), i16> {
        let by_id = version >= 13;
        let topic = |name: &str, id: Uuid| {
            if by_id {
                Topic::Id(id)
            } else {
                Topic::Name(Arc::from(name))
            }
        };
        let requested = || {
            r.topics.iter().flat_map(move |t| {
                let named = topic(t.topic.0.as_str(), t.topic_id);
                t.partitions.iter().map(move |p| {
                    let key = (named.clone(), p.partition);
                    (
                        key,
                        Cached::new(p.fetch_offset, p.partition_max_bytes, p.current_leader_epoch),
                    )
                })
            })
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if version < 7 || r.session_epoch < 0 {
            if r.session_id != 0 {
                close(&mut sessions, r.session_id);
            }
            return Ok((Mode::Sessionless, requested().collect()));
        }
        if r.session_epoch == 0 {
            if r.session_id != 0 {
                close(&mut sessions, r.session_id);
            }
            let session = Session::new(by_id, requested(), self.tick());
            if session.partitions.len() > MAX_SESSION_PARTITIONS {
                // Too big to keep: answered in full, as without sessions.
                return Ok((Mode::Sessionless, requested().collect()));
            }
            make_room(&mut sessions, session.partitions.len(), None);
            let id = self.fresh_id(&sessions);
            let listed = session.listed();
            sessions.insert(id, session);
            crate::metrics::kafka_fetch_sessions(1);
            return Ok((Mode::Opened(id), listed));
        }
        let session = sessions
            .get_mut(&r.session_id)
            .ok_or_else(codes::fetch_session_not_found)?;
        if session.next_epoch != r.session_epoch {
            return Err(codes::invalid_fetch_session_epoch());
        }
        if session.by_id != by_id {
            return Err(kafka_protocol::ResponseError::FetchSessionTopicIdError.code());
        }
        session.next_epoch = if r.session_epoch == i32::MAX {
            1
        } else {
            r.session_epoch + 1
        };
        session.used = self.tick();
        for (key, update) in requested() {
            session.upsert(key, update);
        }
        for forgotten in &r.forgotten_topics_data {
            for p in &forgotten.partitions {
                session.remove(&(topic(forgotten.topic.0.as_str(), forgotten.topic_id), *p));
            }
        }
        let size = session.partitions.len();
        let listed = session.listed();
        if size > MAX_SESSION_PARTITIONS {
            // Grown too big: the client opens another, which is answered
            // without a session.
            close(&mut sessions, r.session_id);
            return Err(codes::fetch_session_not_found());
        }
        if !r.topics.is_empty() {
            make_room(&mut sessions, 0, Some(r.session_id));
        }
        Ok((Mode::Incremental(r.session_id), listed))
    }

    fn tick(&self) -> u64 {
        self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// A positive id no open session has.
    fn fresh_id(&self, sessions: &HashMap<i32, Session>) -> i32 {
        loop {
            let n = self.issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Spread over the positive range so ids are not guessable in
            // order from the first; never 0 (no session) or negative.
            let id = i32::try_from(n.wrapping_mul(2_654_435_761) % (i32::MAX as u32))
                .unwrap_or(1)
                .max(1);
            if !sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Which of the answers to send (`true`: include), recording what the
    /// session's client is told and moving partitions answered with
    /// records to the end of the session's order. Each answer is (its
    /// partition, what was found, whether it carries records).
    pub(super) fn finish(&self, mode: Mode, answers: &[(&Key, &Found, bool)]) -> Vec<bool> {
        let id = match mode {
            Mode::Sessionless => return vec![true; answers.len()],
            Mode::Opened(id) | Mode::Incremental(id) => id,
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let Some(session) = sessions.get_mut(&id) else {
            // Evicted meanwhile: answer everything read (every partition is
            // in the client's session); its next fetch learns the news.
            return vec![true; answers.len()];
        };
        answers
            .iter()
            .map(|(key, part, has_records)| {
                if *has_records {
                    session.move_back(key);
                }
                let Some(c) = session.cached_mut(key) else {
                    return matches!(mode, Mode::Opened(_));
                };
                let moved = c.high_watermark != part.high_watermark
                    || c.log_start_offset != part.log_start_offset
                    || c.last_stable_offset != part.last_stable_offset;
                if part.error_code == 0 {
                    c.high_watermark = part.high_watermark;
                    c.log_start_offset = part.log_start_offset;
                    c.last_stable_offset = part.last_stable_offset;
                }
                matches!(mode, Mode::Opened(_)) || *has_records || part.error_code != 0 || moved
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "fetch_session_tests.rs"]
mod tests;
