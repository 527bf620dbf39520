//! Topic ids (Metadata v10+): each topic's id is derived from what names
//! one incarnation of it: a stream's name and creation time (the same on
//! every node of a cluster, which creates a replicated stream with one
//! creation time everywhere), a view's name and its own creation time. So
//! an id is stable across restarts, the same on every node, and new when a
//! topic is deleted and created again under the same name.
//!
//! Invariants: an id is a version-8 (custom) UUID, never the nil UUID
//! Kafka uses for "no id"; an id is looked up in a map of ids last seen
//! ([`TopicIds`]), each hit checked against the topic's creation time, so
//! a deleted topic's id is never answered with the name's new incarnation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::super::Ctx;
use crate::node::StreamInfo;

/// The id of stream `info` as a topic.
pub(super) fn of_stream(info: &StreamInfo) -> Uuid {
    derive(b"stream", &info.name, info.created_ms)
}

/// The id of view `name` created at `created_ms`.
pub(super) fn of_view(name: &str, created_ms: u64) -> Uuid {
    derive(b"view", name, created_ms)
}

fn derive(kind: &[u8], name: &str, created_ms: u64) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"sluice topic id\0");
    h.update(kind);
    h.update(b"\0");
    h.update(name.as_bytes());
    h.update(b"\0");
    h.update(created_ms.to_be_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The id topic `name` has now (a stream's, else a view's), if it exists.
pub(super) fn of_name(ctx: &Ctx, name: &str) -> Option<Uuid> {
    match ctx.host.stream_created_ms(name) {
        Some(ms) => Some(derive(b"stream", name, ms)),
        None => ctx.host.view(name).map(|v| of_view(name, v.created_ms)),
    }
}

/// One incarnation of a topic: a stream or a view, and its creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Incarnation {
    Stream(u64),
    View(u64),
}

/// Whether topic `name` is still the incarnation `was`.
fn still(ctx: &Ctx, name: &str, was: Incarnation) -> bool {
    match was {
        Incarnation::Stream(ms) => ctx.host.stream_created_ms(name) == Some(ms),
        Incarnation::View(ms) => ctx.host.view(name).is_some_and(|v| v.created_ms == ms),
    }
}

/// Topic ids to names, as last seen: a hit is checked against the topic's
/// creation time (a map lookup, no listing), a miss or a stale hit lists
/// every topic once and starts the map again. So requests that name
/// topics by id (Fetch v13+) cost a lookup per topic.
#[derive(Default)]
pub(crate) struct TopicIds {
    names: Mutex<HashMap<Uuid, (Arc<str>, Incarnation)>>,
}

/// The name of the topic (stream or view) whose id is `id`.
pub(super) fn name_of(ctx: &Ctx, id: Uuid) -> Option<Arc<str>> {
    if id.is_nil() {
        return None;
    }
    let known = ctx
        .topic_ids
        .names
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .cloned();
    if let Some((name, was)) = known
        && still(ctx, &name, was)
    {
        return Some(name);
    }
    let mut all: HashMap<Uuid, (Arc<str>, Incarnation)> = HashMap::new();
    for s in ctx.host.list_streams() {
        all.insert(
            of_stream(&s),
            (Arc::from(s.name.as_str()), Incarnation::Stream(s.created_ms)),
        );
    }
    for v in ctx.host.list_view_names() {
        if let Some(m) = ctx.host.view(&v) {
            all.entry(of_view(&v, m.created_ms))
                .or_insert_with(|| (Arc::from(v.as_str()), Incarnation::View(m.created_ms)));
        }
    }
    let found = all.get(&id).map(|(name, _)| name.clone());
    *ctx.topic_ids.names.lock().unwrap_or_else(|p| p.into_inner()) = all;
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_one_incarnation_and_are_never_nil() {
        let a = derive(b"stream", "orders", 1_700_000_000_000);
        assert_eq!(a, derive(b"stream", "orders", 1_700_000_000_000), "stable");
        assert_ne!(a, derive(b"stream", "orders", 1_700_000_000_001), "a new incarnation");
        assert_ne!(a, derive(b"stream", "orders2", 1_700_000_000_000));
        assert_ne!(
            a,
            derive(b"view", "orders", 1_700_000_000_000),
            "a view of the same name"
        );
        assert!(!a.is_nil());
        assert_eq!(a.get_version_num(), 8);
    }
}
