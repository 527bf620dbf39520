//! Tests of the fault-injecting store ([`super::faults::FaultyStore`]): each
//! fault, the gate, path filters and rule order, on memory and local stores.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, PutResult, Result};

use super::faults::*;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use tokio::time::{Instant, timeout};

const SHORT: Duration = Duration::from_millis(50);

fn memory() -> Arc<FaultyStore> {
    FaultyStore::new(Arc::new(InMemory::new()))
}

fn local() -> (tempfile::TempDir, Arc<FaultyStore>) {
    let dir = tempfile::tempdir().unwrap();
    let fs = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    (dir, FaultyStore::new(Arc::new(fs)))
}

async fn put(store: &FaultyStore, path: &str, data: &'static str) -> Result<PutResult> {
    store
        .put(&Path::from(path), PutPayload::from_static(data.as_bytes()))
        .await
}

fn assert_injected<T: fmt::Debug>(r: Result<T>) {
    match r {
        Err(object_store::Error::Generic {
            store: "faulty",
            source,
        }) => {
            assert!(source.to_string().contains("injected fault"), "{source}")
        }
        other => panic!("expected injected fault, got {other:?}"),
    }
}

#[tokio::test]
async fn error_fails_exactly_times_then_passes() {
    let store = memory();
    let path = Path::from("a/b");
    put(&store, "a/b", "hello").await.unwrap();
    store.inject(Op::Get, Fault::Error, Some(2));
    assert_injected(store.get(&path).await);
    assert_injected(store.get_range(&path, 0..2).await);
    assert_eq!(store.get(&path).await.unwrap().bytes().await.unwrap(), "hello");
    assert_eq!(
        (store.calls(Op::Get), store.calls(Op::Put), store.calls(Op::Head)),
        (3, 1, 0)
    );
    assert!(store.to_string().starts_with("FaultyStore("));
}

#[tokio::test]
async fn hang_needs_a_timeout_and_delay_delays() {
    let store = memory();
    put(&store, "x", "1").await.unwrap();
    store.inject(Op::Head, Fault::Hang, Some(1));
    assert!(timeout(SHORT, store.head(&Path::from("x"))).await.is_err());
    assert_eq!(store.head(&Path::from("x")).await.unwrap().size, 1);
    assert_eq!(store.calls(Op::Head), 2);
    store.inject(Op::Put, Fault::Delay(Duration::from_millis(20)), Some(1));
    let start = Instant::now();
    put(&store, "x", "2").await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[tokio::test]
async fn a_held_call_waits_for_its_gate_and_later_ones_pass() {
    let store = memory();
    let gate = store.hold_matching(Op::Put, "held/", Some(1));
    let s = store.clone();
    let held = tokio::spawn(async move { put(&s, "held/a", "1").await });
    timeout(Duration::from_secs(20), gate.wait_arrived(1))
        .await
        .expect("the held put reached its gate");
    // Other paths, and the next matching call, are not held.
    put(&store, "free/b", "2").await.unwrap();
    put(&store, "held/c", "3").await.unwrap();
    assert!(!held.is_finished());
    assert!(
        store.inner().head(&Path::from("held/a")).await.is_err(),
        "not written yet"
    );
    gate.release();
    held.await.unwrap().unwrap();
    assert_eq!(
        store.get(&Path::from("held/a")).await.unwrap().bytes().await.unwrap(),
        "1"
    );
    assert_eq!((gate.arrived(), store.calls(Op::Put)), (1, 3));
    // A released gate holds nothing more, and its rule no longer hides
    // the rules behind it.
    let gate = store.hold_matching(Op::Get, "", None);
    store.inject(Op::Get, Fault::Error, Some(1));
    gate.release();
    assert_injected(store.get(&Path::from("free/b")).await);
    store.get(&Path::from("free/b")).await.unwrap();
    assert_eq!(gate.arrived(), 0);
}

#[tokio::test]
async fn fail_after_lets_n_calls_pass() {
    let (_dir, store) = local();
    store.fail_after(Op::Put, 2, Fault::Error, Some(1));
    put(&store, "p/1", "1").await.unwrap();
    put(&store, "p/2", "2").await.unwrap();
    assert_injected(put(&store, "p/3", "3").await);
    put(&store, "p/4", "4").await.unwrap();
    assert_eq!(store.calls(Op::Put), 4);
    assert!(store.inner().head(&Path::from("p/3")).await.is_err());
}

#[tokio::test]
async fn multipart_second_part_fails_local() {
    let (_dir, store) = local();
    store.fail_after(Op::MultipartPart, 1, Fault::Error, Some(1));
    let path = Path::from("seg/0001");
    let mut upload = store.put_multipart(&path).await.unwrap();
    upload.put_part(PutPayload::from_static(b"one")).await.unwrap();
    assert_injected(upload.put_part(PutPayload::from_static(b"two")).await);
    upload.abort().await.unwrap();
    assert_eq!((store.calls(Op::Put), store.calls(Op::MultipartPart)), (1, 2));
    assert_eq!(
        (store.calls(Op::MultipartAbort), store.calls(Op::MultipartComplete)),
        (1, 0)
    );
    assert!(store.head(&path).await.is_err());
}

#[tokio::test]
async fn multipart_part_hang_and_complete_error_memory() {
    let store = memory();
    store.fail_after(Op::MultipartPart, 1, Fault::Hang, Some(1));
    store.inject(Op::MultipartComplete, Fault::Error, Some(1));
    let path = Path::from("seg/0002");
    let mut upload = store.put_multipart(&path).await.unwrap();
    let first = upload.put_part(PutPayload::from_static(b"ab"));
    let second = upload.put_part(PutPayload::from_static(b"cd"));
    first.await.unwrap();
    assert!(timeout(SHORT, second).await.is_err());
    upload.put_part(PutPayload::from_static(b"ef")).await.unwrap();
    assert_injected(upload.complete().await);
    upload.complete().await.unwrap();
    assert_eq!(
        (store.calls(Op::MultipartPart), store.calls(Op::MultipartComplete)),
        (3, 2)
    );
    assert_eq!(store.get(&path).await.unwrap().bytes().await.unwrap(), "abef");
}

#[tokio::test]
async fn path_filter_only_affects_matching_paths() {
    let (_dir, store) = local();
    store.inject_matching(Op::Put, "bad/", Fault::Error, None);
    put(&store, "good/a", "a").await.unwrap();
    assert_injected(put(&store, "bad/b", "b").await);
    assert_injected(put(&store, "bad/b", "b").await);
    store.clear();
    put(&store, "bad/b", "b").await.unwrap();
    assert_eq!(store.calls(Op::Put), 4);

    store.inject_matching(Op::Delete, "bad", Fault::Error, Some(1));
    store.delete(&Path::from("good/a")).await.unwrap();
    assert_injected(store.delete(&Path::from("bad/b")).await);
    store.delete(&Path::from("bad/b")).await.unwrap();
    assert_eq!(store.calls(Op::Delete), 3);

    store.inject_matching(Op::Copy, "dst", Fault::Error, Some(1));
    put(&store, "src", "s").await.unwrap();
    assert_injected(store.copy(&Path::from("src"), &Path::from("dst")).await);
    store.copy(&Path::from("src"), &Path::from("dst")).await.unwrap();
}

#[tokio::test]
async fn list_faults_and_insertion_order() {
    let store = memory();
    put(&store, "d/1", "1").await.unwrap();
    store.inject(Op::List, Fault::Error, Some(1));
    assert_injected(store.list(None).try_collect::<Vec<_>>().await);
    assert_eq!(
        store
            .list(Some(&Path::from("d")))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .len(),
        1
    );
    store.inject(Op::List, Fault::Hang, Some(1));
    assert!(timeout(SHORT, store.list_with_delimiter(None)).await.is_err());
    assert_eq!(store.list_with_delimiter(None).await.unwrap().common_prefixes.len(), 1);
    assert_eq!(store.calls(Op::List), 4);
    // The first matching active rule applies; the second waits its turn.
    store.inject(Op::Get, Fault::Delay(Duration::from_millis(1)), Some(1));
    store.inject(Op::Get, Fault::Error, Some(1));
    let path = Path::from("d/1");
    store.get(&path).await.unwrap();
    assert_injected(store.get(&path).await);
    store.get(&path).await.unwrap();
}
