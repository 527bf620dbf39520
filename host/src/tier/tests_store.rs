//! Tests of the store layer on every kind of store: multipart uploads (the
//! S3 part-size rules are enforced by moto), their abort on failure, and
//! manifest compare-and-swap with epoch fencing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::path::Path;

use super::TierError;
use super::manifest::{self, Manifest};
use super::tests::{Store, store};
use crate::objstore::faults::{Fault, FaultyStore, Op};
use crate::objstore::{ObjStoreError, Remote, RemoteOptions};

fn remote(store: Arc<dyn ObjectStore>, prefix: Path) -> Remote {
    Remote::new(
        store,
        prefix,
        RemoteOptions {
            timeout: Duration::from_millis(2000),
            retries: 1,
            backoff: Duration::from_millis(10),
            part_bytes: crate::objstore::S3_MIN_PART_BYTES,
            ..RemoteOptions::default()
        },
    )
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn multipart_round_trip(kind: Store) {
    let dir = tempfile::tempdir().unwrap();
    let Some((store, prefix)) = store(kind, dir.path()) else {
        return;
    };
    let r = remote(store, prefix);
    // 12 MiB + 3 in odd writes: parts of 5 MiB, 5 MiB, then 2 MiB + 3.
    let data = pattern(12 * 1024 * 1024 + 3);
    let path = r.path("mp/object.seg");
    let mut up = r.upload(path.clone());
    for chunk in data.chunks(777_777) {
        up.write(chunk).await.unwrap();
    }
    assert_eq!(up.finish().await.unwrap(), data.len() as u64);
    let back = r.get(&path).await.unwrap().expect("object written");
    assert!(back == data, "multipart object differs from what was written");
    let mid = r.get_range(&path, 5_000_000..5_000_100).await.unwrap();
    assert_eq!(&mid[..], &data[5_000_000..5_000_100]);
    // A small object goes as one put.
    let small = r.path("mp/small.seg");
    let mut up = r.upload(small.clone());
    up.write(b"tiny").await.unwrap();
    assert_eq!(up.finish().await.unwrap(), 4);
    assert_eq!(r.get(&small).await.unwrap(), Some(Bytes::from_static(b"tiny")));
}

#[tokio::test]
async fn multipart_upload_memory() {
    multipart_round_trip(Store::Memory).await;
}

#[tokio::test]
async fn multipart_upload_file() {
    multipart_round_trip(Store::File).await;
}

#[tokio::test]
async fn multipart_upload_s3_protocol_server() {
    multipart_round_trip(Store::S3).await;
}

#[tokio::test]
async fn a_failed_or_hung_part_aborts_the_upload_in_bounded_time() {
    let faulty = FaultyStore::new(Arc::new(object_store::memory::InMemory::new()));
    let mut opts = RemoteOptions {
        timeout: Duration::from_millis(100),
        retries: 0,
        part_bytes: crate::objstore::S3_MIN_PART_BYTES,
        ..RemoteOptions::default()
    };
    let r = Remote::new(faulty.clone(), Path::default(), opts.clone());
    let data = pattern(11 * 1024 * 1024);

    // The second part fails: the write fails and the upload is aborted.
    faulty.fail_after(Op::MultipartPart, 1, Fault::Error, Some(1));
    let path = r.path("a.seg");
    let mut up = r.upload(path.clone());
    let err = up.write(&data).await.unwrap_err();
    assert!(matches!(err, ObjStoreError::Store { op: "put_part", .. }), "{err}");
    assert_eq!(faulty.calls(Op::MultipartAbort), 1);
    assert_eq!(r.get(&path).await.unwrap(), None, "nothing visible");

    // A part that hangs and a complete that hangs both time out.
    faulty.clear();
    faulty.inject(Op::MultipartPart, Fault::Hang, Some(1));
    let started = Instant::now();
    let mut up = r.upload(r.path("b.seg"));
    let err = up.write(&data).await.unwrap_err();
    assert!(matches!(err, ObjStoreError::Timeout { .. }), "{err}");
    faulty.clear();
    faulty.inject(Op::MultipartComplete, Fault::Hang, Some(1));
    let mut up = r.upload(r.path("c.seg"));
    up.write(&data).await.unwrap();
    let err = up.finish().await.unwrap_err();
    assert!(matches!(err, ObjStoreError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(faulty.calls(Op::MultipartAbort), 3);

    // Plain calls retry: one injected error is absorbed by one retry.
    opts.retries = 1;
    let r = Remote::new(faulty.clone(), Path::default(), opts);
    faulty.clear();
    faulty.inject(Op::Put, Fault::Error, Some(1));
    r.put(&r.path("d"), Bytes::from_static(b"x")).await.unwrap();
    faulty.inject(Op::Put, Fault::Error, Some(2));
    assert!(r.put(&r.path("e"), Bytes::from_static(b"x")).await.is_err());
}

async fn manifest_cas(kind: Store) {
    let dir = tempfile::tempdir().unwrap();
    let Some((store, prefix)) = store(kind, dir.path()) else {
        return;
    };
    let r = remote(store, prefix);
    assert_eq!(manifest::load(&r, 7, 0).await.unwrap(), None);
    let a = manifest::claim(&r, 7, 0).await.unwrap();
    assert_eq!((a.version, a.epoch), (1, 1));
    let a2 = manifest::commit(&r, &a, a.clone()).await.unwrap();
    assert_eq!((a2.version, a2.epoch), (2, 1));

    let b = manifest::claim(&r, 7, 0).await.unwrap();
    assert_eq!((b.version, b.epoch), (3, 2));
    // A, still at epoch 1 and version 2, tries to commit: fenced.
    let mut stale = a2.clone();
    stale.garbage.push(manifest::Garbage {
        key: "x".into(),
        since_ms: 1,
    });
    let err = manifest::commit(&r, &a2, stale).await.unwrap_err();
    assert!(matches!(err, TierError::Fenced { ours: 1, theirs: 2, .. }), "{err}");
    let current = manifest::load(&r, 7, 0).await.unwrap().unwrap();
    assert_eq!(current, b);
    // An invalid manifest is refused before it is written.
    let mut broken: Manifest = b.clone();
    broken.end_offset = 10;
    assert!(manifest::commit(&r, &b, broken).await.is_err());
    assert_eq!(manifest::load(&r, 7, 0).await.unwrap().unwrap(), b);
    // Old versions can be pruned; the current one stays.
    assert_eq!(manifest::prune_versions(&r, &b, 1).await.unwrap(), 1);
    assert_eq!(manifest::load(&r, 7, 0).await.unwrap().unwrap(), b);
}

#[tokio::test]
async fn manifest_cas_memory() {
    manifest_cas(Store::Memory).await;
}

#[tokio::test]
async fn manifest_cas_file() {
    manifest_cas(Store::File).await;
}

#[tokio::test]
async fn manifest_cas_s3_protocol_server() {
    manifest_cas(Store::S3).await;
}
