//! Writer epochs over many restarts: `wal/epochs/` stays small (a history
//! replaces older claims and starts), and the zombie rule decides exactly
//! as it did with every claim kept.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::object_format::{encode_object, object_key};
use super::tests_contract::{append_concurrently, expected, meta, open_object, payload, remote_on};
use super::*;
use crate::fsutil::now_ms;
use crate::objstore::RemoteOptions;

fn size300(_: u64) -> usize {
    300
}

async fn epoch_files(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    let mut names: Vec<String> = store
        .list(Some(&ObjectPath::from("node/wal/epochs")))
        .map(|m| m.unwrap().location.filename().unwrap_or_default().to_string())
        .collect()
        .await;
    names.sort();
    names
}

/// Waits (bounded) until the newest writer's background collection left
/// at most `n` files under `wal/epochs/`.
async fn settle(store: &Arc<dyn ObjectStore>, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let files = epoch_files(store).await;
        if files.len() <= n || Instant::now() > deadline {
            return files;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_restarts_leave_a_few_epoch_files_and_late_zombies_stay_zombies() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let r = remote_on(store.clone(), "node", RemoteOptions::default());
    // A (epoch 1) writes LSN 1..=10.
    let (a, _, _) = open_object(&r, Options::default()).await;
    let a = Arc::new(a);
    let (mut acks, _) = append_concurrently(&a, 0, 1, 10, size300).await;
    a.shutdown().await;
    // B (epoch 2) takes over at 11 and writes 11..=15.
    let (b, rec_b, _) = open_object(&r, Options::default()).await;
    assert_eq!((b.epoch(), rec_b.next_lsn), (Some(2), FIRST_LSN + 10));
    let b = Arc::new(b);
    let (more, _) = append_concurrently(&b, 100, 1, 5, size300).await;
    acks.extend(more);
    b.shutdown().await;
    // 48 more restarts, a few of them writing.
    for round in 3..=50u64 {
        let (w, rec, seen) = open_object(&r, Options::default()).await;
        assert_eq!(w.epoch(), Some(round));
        assert!(rec.cut.is_none(), "round {round}: {:?}", rec.cut);
        assert!(seen == expected(&acks, size300, 0), "round {round}: replay differs");
        if round % 10 == 0 {
            let w = Arc::new(w);
            let (more, _) = append_concurrently(&w, 1000 * round, 1, 2, size300).await;
            acks.extend(more);
            w.shutdown().await;
        } else {
            w.shutdown().await;
        }
    }
    // Only the newest epoch's claim, start and history remain.
    let files = settle(&store, 3).await;
    assert_eq!(
        files,
        ["claim", "history", "start"].map(|s| format!("{:010}.{s}", 50)),
        "after 50 starts"
    );

    // A's upload of an object at LSN 11, made before B took over, lands
    // only now. It sorts before B's object at 11; only B's claim (long
    // collected, kept in the history) makes it a zombie.
    let late_payload = payload(7, 300);
    let late = encode_object(1, FIRST_LSN + 10, 0, now_ms(), &[(meta(7), &late_payload[..])]);
    let late_key = ObjectPath::from(format!("node/wal/objects/{}", object_key(FIRST_LSN + 10, 1)));
    store.put(&late_key, late.into()).await.unwrap();
    let (w, rec, seen) = open_object(&r, Options::default()).await;
    assert!(rec.cut.is_none(), "{:?}", rec.cut);
    assert!(
        seen == expected(&acks, size300, 0),
        "the late object of epoch 1 was replayed"
    );
    w.shutdown().await;
}
