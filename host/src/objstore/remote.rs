//! [`Remote`]: the store plus the policy every call goes through. Every
//! call has a timeout per attempt and bounded retries with exponential
//! backoff; answers that retrying cannot change (not found, already exists,
//! precondition failed) are returned at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::error::ObjStoreError;
use super::upload::Upload;

/// The smallest part S3 accepts in a multipart upload, except the last.
pub const S3_MIN_PART_BYTES: u64 = 5 * 1024 * 1024;

/// Timeouts and retries of remote calls.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Time one attempt of one call may take.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// First backoff; doubles per attempt up to `backoff_max`.
    pub backoff: Duration,
    pub backoff_max: Duration,
    /// Multipart part size (raised to `min_part_bytes` if smaller).
    pub part_bytes: u64,
    /// The store's smallest allowed non-final part.
    pub min_part_bytes: u64,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            part_bytes: 8 * 1024 * 1024,
            min_part_bytes: S3_MIN_PART_BYTES,
        }
    }
}

/// The store plus the policy every call goes through.
#[derive(Debug, Clone)]
pub struct Remote {
    pub(super) store: Arc<dyn ObjectStore>,
    prefix: Path,
    pub opts: RemoteOptions,
}

fn retryable(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    !matches!(
        e,
        E::NotFound { .. }
            | E::AlreadyExists { .. }
            | E::Precondition { .. }
            | E::NotSupported { .. }
            | E::InvalidPath { .. }
            | E::NotImplemented { .. }
    )
}

impl Remote {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path, opts: RemoteOptions) -> Remote {
        Remote { store, prefix, opts }
    }

    /// The key `rel` (slash-separated) under this node's prefix.
    pub fn path(&self, rel: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.join(part);
        }
        p
    }

    /// Runs `call` with a timeout per attempt and bounded retries.
    pub(super) async fn run<T, F, Fut>(&self, op: &'static str, path: &Path, mut call: F) -> Result<T, ObjStoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        let mut backoff = self.opts.backoff;
        let mut attempt = 0u32;
        loop {
            let err = match tokio::time::timeout(self.opts.timeout, call()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if !retryable(&e) => {
                    return Err(ObjStoreError::Store {
                        op,
                        path: path.to_string(),
                        source: e,
                    });
                }
                Ok(Err(e)) => ObjStoreError::Store {
                    op,
                    path: path.to_string(),
                    source: e,
                },
                Err(_) => ObjStoreError::Timeout {
                    op,
                    path: path.to_string(),
                    timeout_ms: self.opts.timeout.as_millis() as u64,
                },
            };
            if attempt >= self.opts.retries {
                return Err(err);
            }
            attempt += 1;
            tracing::debug!(op, %path, attempt, error = %err, "object store call failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.opts.backoff_max);
        }
    }

    pub async fn put(&self, path: &Path, data: Bytes) -> Result<(), ObjStoreError> {
        self.run("put", path, || self.store.put(path, PutPayload::from(data.clone())))
            .await
            .map(|_| ())
    }

    /// Creates `path` only if absent: `Ok(false)` when it already exists.
    pub async fn put_if_absent(&self, path: &Path, data: Bytes) -> Result<bool, ObjStoreError> {
        let opts = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .run("put", path, || {
                self.store.put_opts(path, PutPayload::from(data.clone()), opts())
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(ObjStoreError::Store {
                source: object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The whole object, or `None` if it does not exist.
    pub async fn get(&self, path: &Path) -> Result<Option<Bytes>, ObjStoreError> {
        let r = self
            .run("get", path, || async { self.store.get(path).await?.bytes().await })
            .await;
        match r {
            Ok(b) => Ok(Some(b)),
            Err(ObjStoreError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn get_range(&self, path: &Path, range: std::ops::Range<u64>) -> Result<Bytes, ObjStoreError> {
        let want = range.end.saturating_sub(range.start);
        let b = self
            .run("get_range", path, || async {
                let opts = GetOptions::new().with_range(Some(range.clone()));
                super::payload::bytes(self.store.get_opts(path, opts).await?).await
            })
            .await?;
        if b.len() as u64 != want {
            return Err(ObjStoreError::Corrupt {
                path: path.to_string(),
                reason: format!("range read returned {} of {want} bytes", b.len()),
            });
        }
        Ok(b)
    }

    /// Every object under `rel`.
    pub async fn list(&self, rel: &str) -> Result<Vec<ObjectMeta>, ObjStoreError> {
        let dir = self.path(rel);
        self.run("list", &dir, || async {
            let mut out = Vec::new();
            let mut s = self.store.list(Some(&dir));
            while let Some(m) = s.next().await {
                out.push(m?);
            }
            Ok(out)
        })
        .await
    }

    /// Objects under `rel` whose keys sort after `offset` (a full key).
    pub async fn list_after(&self, rel: &str, offset: &Path) -> Result<Vec<ObjectMeta>, ObjStoreError> {
        let dir = self.path(rel);
        self.run("list", &dir, || async {
            let mut out = Vec::new();
            let mut s = self.store.list_with_offset(Some(&dir), offset);
            while let Some(m) = s.next().await {
                out.push(m?);
            }
            Ok(out)
        })
        .await
    }

    /// Deletes `path`; an absent object is not an error.
    pub async fn delete(&self, path: &Path) -> Result<(), ObjStoreError> {
        match self.run("delete", path, || self.store.delete(path)).await {
            Err(ObjStoreError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(()),
            r => r,
        }
    }

    /// Starts writing `path` in parts of `part_bytes`.
    pub fn upload(&self, path: Path) -> Upload {
        self.upload_in_parts(path, self.opts.part_bytes)
    }

    /// Starts writing `path` in parts of `part_bytes` (raised to the store's
    /// minimum); the buffer holds at most about one part.
    pub fn upload_in_parts(&self, path: Path, part_bytes: u64) -> Upload {
        let part = part_bytes.max(self.opts.min_part_bytes).max(1) as usize;
        Upload {
            remote: self.clone(),
            path,
            part,
            buf: BytesMut::new(),
            multipart: None,
            written: 0,
        }
    }
}
