//! Picking a store by URL: `file://`, `s3://bucket/prefix`, `memory://`;
//! none means a file store under the data dir (the embedded default).

use std::path::Path as FsPath;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;

use super::error::ObjStoreError;

/// Opens the store named by `url` (or the embedded default under
/// `data_dir/objects`), returning it and the key prefix to use in it.
pub fn open(url: Option<&str>, data_dir: &FsPath) -> Result<(Arc<dyn ObjectStore>, Path), ObjStoreError> {
    let cfg = |e: object_store::Error| ObjStoreError::Config(e.to_string());
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        let dir = data_dir.join("objects");
        std::fs::create_dir_all(&dir).map_err(|e| ObjStoreError::Config(format!("{}: {e}", dir.display())))?;
        return Ok((Arc::new(durable_fs(&dir)?), Path::default()));
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| ObjStoreError::Config(format!("{url:?} is not a URL (file://, s3://, memory://)")))?;
    match scheme {
        "memory" => Ok((Arc::new(object_store::memory::InMemory::new()), prefix_of(rest)?)),
        "file" => {
            if !rest.starts_with('/') {
                return Err(ObjStoreError::Config(format!(
                    "{url:?}: a file URL needs an absolute path"
                )));
            }
            std::fs::create_dir_all(rest).map_err(|e| ObjStoreError::Config(format!("{rest}: {e}")))?;
            Ok((Arc::new(durable_fs(FsPath::new(rest))?), Path::default()))
        }
        "s3" => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(ObjStoreError::Config(format!("{url:?}: no bucket")));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                // Our own retry loop (with its own timeouts) governs; the
                // client must not hide minutes of retries inside one call.
                .with_retry(object_store::RetryConfig {
                    max_retries: 0,
                    ..Default::default()
                })
                .build()
                .map_err(cfg)?;
            Ok((Arc::new(s3), prefix_of(prefix)?))
        }
        other => Err(ObjStoreError::Config(format!(
            "unsupported object store scheme {other:?} (use file://, s3:// or memory://)"
        ))),
    }
}

/// A file store that fsyncs every object and its directory before a write
/// returns: the WAL is trimmed once an object is written, so the object must
/// survive a power loss (object_store's default does not sync).
fn durable_fs(dir: &FsPath) -> Result<object_store::local::LocalFileSystem, ObjStoreError> {
    object_store::local::LocalFileSystem::new_with_prefix(dir)
        .map(|fs| fs.with_fsync(true).with_automatic_cleanup(true))
        .map_err(|e| ObjStoreError::Config(e.to_string()))
}

/// An S3 store at an explicit endpoint with static credentials (S3-compatible
/// test servers such as moto; a node reads `AWS_*` variables instead).
pub fn s3_at(endpoint: &str, bucket: &str, key_id: &str, secret: &str) -> Result<Arc<dyn ObjectStore>, ObjStoreError> {
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id(key_id)
        .with_secret_access_key(secret)
        .with_bucket_name(bucket)
        .build()
        .map_err(|e| ObjStoreError::Config(e.to_string()))?;
    Ok(Arc::new(s3))
}

fn prefix_of(p: &str) -> Result<Path, ObjStoreError> {
    Path::parse(p.trim_matches('/')).map_err(|e| ObjStoreError::Config(format!("prefix {p:?}: {e}")))
}
