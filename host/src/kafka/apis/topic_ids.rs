//! Topic ids (Metadata v10+): each topic's id is derived from what names
//! one incarnation of it: a stream's name and creation time (the same on
//! every node of a cluster, which creates a replicated stream with one
//! creation time everywhere), a view's name and its own creation time. So
//! an id is stable across restarts, the same on every node, and new when a
//! topic is deleted and created again under the same name.
//!
//! Invariants: an id is a version-8 (custom) UUID, never the nil UUID
//! Kafka uses for "no id"; looking an id up lists the topics once.

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

/// The name of the topic (stream or view) whose id is `id`.
pub(super) fn name_of(ctx: &Ctx, id: Uuid) -> Option<String> {
    if id.is_nil() {
        return None;
    }
    let stream = ctx
        .host
        .list_streams()
        .into_iter()
        .find(|s| of_stream(s) == id)
        .map(|s| s.name);
    stream.or_else(|| {
        ctx.host
            .list_view_names()
            .into_iter()
            .find(|v| ctx.host.view(v).is_some_and(|m| of_view(v, m.created_ms) == id))
    })
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
