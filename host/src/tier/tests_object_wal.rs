//! A node on the object-store WAL (`wal = "object"`) through a real `Host`:
//! after uploads trimmed the WAL, a node with an empty data dir on the same
//! store gets back every stream, record and plugin, and fences the old node.

use std::time::Duration;

use super::tests::{Store, check, eager, on_every_store, produce, read_all, store};
use crate::Host;
use crate::config::WalKind;

async fn a_node_with_an_empty_data_dir_recovers_everything(kind: Store) {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let Some((store, prefix)) = store(kind, dir_a.path()) else {
        return;
    };
    let settings = |dir: &std::path::Path| crate::Settings {
        wal: WalKind::Object,
        wal_object_interval: Duration::from_millis(5),
        // Node A keeps running after B takes over: a grace period keeps its
        // (stale) sweep of unreferenced segments off B's new ones.
        gc_grace: Duration::from_secs(600),
        ..eager(dir)
    };
    let a = Host::open_with_store(settings(dir_a.path()), store.clone(), prefix.clone())
        .await
        .unwrap();
    a.create_stream("t", 1).await.unwrap();
    let wasm = sluice_test_artifacts::read(sluice_test_artifacts::UPPER);
    let v = a.put_plugin("upper", wasm.clone()).await.unwrap();
    produce(&a, "t", 0, 30, 10).await;
    // Uploads trim the WAL, which stores the metadata with the trim point.
    super::tests::wait_for(&a, "t", "WAL trimmed", |p| p.wal_start_offset > 0).await;
    produce(&a, "t", 300, 5, 10).await;
    assert!(
        !dir_a.path().join("wal").exists(),
        "an object-store WAL writes no segment files"
    );

    // Node A is not stopped: B's claim must fence it.
    let b = Host::open_with_store(settings(dir_b.path()), store.clone(), prefix.clone())
        .await
        .unwrap();
    check(&read_all(&b, "t", 0).await, 0, 350);
    let p = b.describe_plugin("upper").unwrap();
    assert_eq!(
        p.versions.iter().map(|x| x.version).collect::<Vec<_>>(),
        vec![v.version]
    );
    let err = a.append("t", 0, &[super::tests::rec(999)]).await.unwrap_err();
    assert_eq!(err.code(), "wal_fenced", "{err}");

    produce(&b, "t", 350, 3, 10).await;
    check(&read_all(&b, "t", 0).await, 0, 380);
    b.delete_plugin("upper").await.unwrap();
    b.shutdown().await;
    drop(a);

    // A third start, again from nothing: the deleted plugin stays deleted.
    let dir_c = tempfile::tempdir().unwrap();
    let c = Host::open_with_store(settings(dir_c.path()), store.clone(), prefix.clone())
        .await
        .unwrap();
    check(&read_all(&c, "t", 0).await, 0, 380);
    assert!(c.describe_plugin("upper").is_err());
    c.shutdown().await;

    // A damaged checkpoint: an empty data dir has no metadata for what the
    // trim removed, so the node refuses to start rather than lose streams.
    let remote = crate::tier::Remote::new(store.clone(), prefix.clone(), Default::default());
    let newest = remote
        .list(crate::wal::object::CHECKPOINTS_DIR)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.location)
        .max()
        .expect("a checkpoint");
    remote
        .put(&newest, bytes::Bytes::from_static(b"{not json"))
        .await
        .unwrap();
    let dir_d = tempfile::tempdir().unwrap();
    let err = Host::open_with_store(settings(dir_d.path()), store.clone(), prefix.clone())
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("no readable metadata snapshot"), "{err}");
    // The node that owns its data dir still starts (its own snapshot).
    let c = Host::open_with_store(settings(dir_c.path()), store, prefix)
        .await
        .unwrap();
    check(&read_all(&c, "t", 0).await, 0, 380);
    c.shutdown().await;
}

on_every_store!(a_node_with_an_empty_data_dir_recovers_everything);

/// A plugin version whose copy in the store fails is not kept locally
/// either (a restart from the store would not have it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_not_stored_in_the_object_store_is_not_kept() {
    use crate::objstore::faults::{Fault, FaultyStore, Op};
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyStore::new(std::sync::Arc::new(object_store::memory::InMemory::new()));
    let settings = crate::Settings {
        wal: WalKind::Object,
        wal_object_interval: Duration::from_millis(5),
        remote_retries: 0,
        ..eager(dir.path())
    };
    let host = Host::open_with_store(settings, faulty.clone(), object_store::path::Path::default())
        .await
        .unwrap();
    let wasm = sluice_test_artifacts::read(sluice_test_artifacts::UPPER);
    faulty.inject_matching(Op::Put, "plugins/", Fault::Error, None);
    let err = host.put_plugin("upper", wasm.clone()).await.unwrap_err();
    assert_eq!(err.code(), "object_store_unavailable", "{err}");
    assert!(host.list_plugins().is_empty());
    assert!(!dir.path().join("plugins/upper/0000000001.wasm").exists());
    faulty.clear();
    assert_eq!(host.put_plugin("upper", wasm).await.unwrap().version, 1);
    host.shutdown().await;
}
