//! Stores for tests: a fresh bucket on a real S3-protocol server (moto).

use std::sync::Arc;

use object_store::ObjectStore;

/// A fresh bucket on moto; `None` only where the test-artifacts crate's
/// policy lets S3 tests skip (it says so on stderr).
pub(crate) fn moto_bucket(tag: &str) -> Option<Arc<dyn ObjectStore>> {
    let server = sluice_test_artifacts::moto::server_or_skip(&format!("S3 variant ({tag})"))?;
    let bucket = server.unique_bucket(tag);
    Some(super::s3_at(&server.endpoint, &bucket, "test", "test").expect("s3 store"))
}
