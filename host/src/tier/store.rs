//! The object store handle and the only way the host calls it.
//!
//! [`open`] picks a store by URL (`file://`, `s3://bucket/prefix`,
//! `memory://`; none means a file store under the data dir). [`Remote`]
//! wraps it so that every call has a timeout and bounded retries with
//! exponential backoff; answers that retrying cannot change (not found,
//! already exists, precondition failed) are returned at once. Multipart
//! uploads go through [`Upload`], which sends parts of a fixed size (never
//! below the store minimum except the last) and aborts on any failure, so no
//! upload is ever left waiting for a part that will not come.

use std::future::Future;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::error::TierError;

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
            min_part_bytes: super::plan::S3_MIN_PART_BYTES,
        }
    }
}

/// Opens the store named by `url` (or the embedded default under
/// `data_dir/objects`), returning it and the key prefix to use in it.
pub fn open(url: Option<&str>, data_dir: &FsPath) -> Result<(Arc<dyn ObjectStore>, Path), TierError> {
    let cfg = |e: object_store::Error| TierError::Config(e.to_string());
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        let dir = data_dir.join("objects");
        std::fs::create_dir_all(&dir).map_err(|e| TierError::Config(format!("{}: {e}", dir.display())))?;
        return Ok((Arc::new(durable_fs(&dir)?), Path::default()));
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| TierError::Config(format!("{url:?} is not a URL (file://, s3://, memory://)")))?;
    match scheme {
        "memory" => Ok((Arc::new(object_store::memory::InMemory::new()), prefix_of(rest)?)),
        "file" => {
            if !rest.starts_with('/') {
                return Err(TierError::Config(format!("{url:?}: a file URL needs an absolute path")));
            }
            std::fs::create_dir_all(rest).map_err(|e| TierError::Config(format!("{rest}: {e}")))?;
            Ok((Arc::new(durable_fs(FsPath::new(rest))?), Path::default()))
        }
        "s3" => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(TierError::Config(format!("{url:?}: no bucket")));
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
        other => Err(TierError::Config(format!(
            "unsupported object store scheme {other:?} (use file://, s3:// or memory://)"
        ))),
    }
}

/// A file store that fsyncs every object and its directory before a write
/// returns: the WAL is trimmed once an object is written, so the object must
/// survive a power loss (object_store's default does not sync).
fn durable_fs(dir: &FsPath) -> Result<object_store::local::LocalFileSystem, TierError> {
    object_store::local::LocalFileSystem::new_with_prefix(dir)
        .map(|fs| fs.with_fsync(true).with_automatic_cleanup(true))
        .map_err(|e| TierError::Config(e.to_string()))
}

/// An S3 store at an explicit endpoint with static credentials (S3-compatible
/// test servers such as moto; a node reads `AWS_*` variables instead).
pub fn s3_at(endpoint: &str, bucket: &str, key_id: &str, secret: &str) -> Result<Arc<dyn ObjectStore>, TierError> {
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id(key_id)
        .with_secret_access_key(secret)
        .with_bucket_name(bucket)
        .build()
        .map_err(|e| TierError::Config(e.to_string()))?;
    Ok(Arc::new(s3))
}

fn prefix_of(p: &str) -> Result<Path, TierError> {
    Path::parse(p.trim_matches('/')).map_err(|e| TierError::Config(format!("prefix {p:?}: {e}")))
}

/// The store plus the policy every call goes through.
#[derive(Debug, Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
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
    async fn run<T, F, Fut>(&self, op: &'static str, path: &Path, mut call: F) -> Result<T, TierError>
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
                    return Err(TierError::Store {
                        op,
                        path: path.to_string(),
                        source: e,
                    });
                }
                Ok(Err(e)) => TierError::Store {
                    op,
                    path: path.to_string(),
                    source: e,
                },
                Err(_) => TierError::Timeout {
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

    pub async fn put(&self, path: &Path, data: Bytes) -> Result<(), TierError> {
        self.run("put", path, || self.store.put(path, PutPayload::from(data.clone())))
            .await
            .map(|_| ())
    }

    /// Creates `path` only if absent: `Ok(false)` when it already exists.
    pub async fn put_if_absent(&self, path: &Path, data: Bytes) -> Result<bool, TierError> {
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
            Err(TierError::Store {
                source: object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The whole object, or `None` if it does not exist.
    pub async fn get(&self, path: &Path) -> Result<Option<Bytes>, TierError> {
        let r = self
            .run("get", path, || async { self.store.get(path).await?.bytes().await })
            .await;
        match r {
            Ok(b) => Ok(Some(b)),
            Err(TierError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn get_range(&self, path: &Path, range: std::ops::Range<u64>) -> Result<Bytes, TierError> {
        let want = range.end.saturating_sub(range.start);
        let b = self
            .run("get_range", path, || self.store.get_range(path, range.clone()))
            .await?;
        if b.len() as u64 != want {
            return Err(TierError::Corrupt {
                path: path.to_string(),
                reason: format!("range read returned {} of {want} bytes", b.len()),
            });
        }
        Ok(b)
    }

    /// Every object under `rel`.
    pub async fn list(&self, rel: &str) -> Result<Vec<ObjectMeta>, TierError> {
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
    pub async fn list_after(&self, rel: &str, offset: &Path) -> Result<Vec<ObjectMeta>, TierError> {
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
    pub async fn delete(&self, path: &Path) -> Result<(), TierError> {
        match self.run("delete", path, || self.store.delete(path)).await {
            Err(TierError::Store {
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

/// One object written in parts. Everything sent is either completed by
/// [`Upload::finish`] or aborted (on error, or by [`Upload::abort`]); an
/// object smaller than one part is written with a single put.
pub struct Upload {
    remote: Remote,
    path: Path,
    part: usize,
    buf: BytesMut,
    multipart: Option<Box<dyn MultipartUpload>>,
    written: u64,
}

impl Upload {
    /// Buffers `data`, sending every full part. The buffer is allocated at
    /// exactly one part and handed over whole when full (never grown, split
    /// or doubled), so an upload holds at most one part.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), TierError> {
        while !data.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf = BytesMut::with_capacity(self.part);
            }
            let take = (self.part - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.part {
                let part = std::mem::take(&mut self.buf).freeze();
                if let Err(e) = self.send_part(part).await {
                    self.abort().await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn send_part(&mut self, part: Bytes) -> Result<(), TierError> {
        let r = &self.remote;
        let path = &self.path;
        let timeout = r.opts.timeout;
        let timed_out = || TierError::Timeout {
            op: "put_part",
            path: path.to_string(),
            timeout_ms: timeout.as_millis() as u64,
        };
        if self.multipart.is_none() {
            let m = r.run("put_multipart", path, || r.store.put_multipart(path)).await?;
            self.multipart = Some(m);
        }
        let Some(m) = self.multipart.as_mut() else {
            return Err(timed_out());
        };
        // A part cannot be re-sent through the same handle (each call takes
        // the next part number), so a failed part fails the upload and the
        // caller retries the whole object.
        let len = part.len() as u64;
        match tokio::time::timeout(timeout, m.put_part(PutPayload::from(part))).await {
            Ok(Ok(())) => {
                self.written += len;
                Ok(())
            }
            Ok(Err(e)) => Err(TierError::Store {
                op: "put_part",
                path: path.to_string(),
                source: e,
            }),
            Err(_) => Err(timed_out()),
        }
    }

    /// Sends what is buffered as the last part and completes the object.
    /// Returns the object's size.
    pub async fn finish(mut self) -> Result<u64, TierError> {
        let rest = std::mem::take(&mut self.buf).freeze();
        let total = self.written + rest.len() as u64;
        if self.multipart.is_none() {
            self.remote.put(&self.path, rest).await?;
            return Ok(total);
        }
        if !rest.is_empty()
            && let Err(e) = self.send_part(rest).await
        {
            self.abort().await;
            return Err(e);
        }
        let timeout = self.remote.opts.timeout;
        let done = match self.multipart.as_mut() {
            Some(m) => tokio::time::timeout(timeout, m.complete()).await,
            None => return Ok(total),
        };
        let err = match done {
            Ok(Ok(_)) => return Ok(total),
            Ok(Err(e)) => TierError::Store {
                op: "complete_multipart",
                path: self.path.to_string(),
                source: e,
            },
            Err(_) => TierError::Timeout {
                op: "complete_multipart",
                path: self.path.to_string(),
                timeout_ms: timeout.as_millis() as u64,
            },
        };
        self.abort().await;
        Err(err)
    }

    /// Abandons the object (best effort, bounded by the timeout).
    pub async fn abort(&mut self) {
        self.buf = BytesMut::new();
        if let Some(mut m) = self.multipart.take() {
            let timeout = self.remote.opts.timeout;
            match tokio::time::timeout(timeout, m.abort()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(path = %self.path, error = %e, "aborting a multipart upload failed"),
                Err(_) => tracing::warn!(path = %self.path, "aborting a multipart upload timed out"),
            }
        }
    }
}
