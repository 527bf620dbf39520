//! Multipart uploads of one object in parts of a fixed size (never below
//! the store minimum except the last), aborted on any failure, so no upload
//! is ever left waiting for a part that will not come.

use bytes::{Bytes, BytesMut};
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};

use super::error::ObjStoreError;
use super::remote::Remote;

/// One object written in parts. Everything sent is either completed by
/// [`Upload::finish`] or aborted (on error, or by [`Upload::abort`]); an
/// object smaller than one part is written with a single put.
pub struct Upload {
    pub(super) remote: Remote,
    pub(super) path: Path,
    pub(super) part: usize,
    pub(super) buf: BytesMut,
    pub(super) multipart: Option<Box<dyn MultipartUpload>>,
    pub(super) written: u64,
}

impl Upload {
    /// Buffers `data`, sending every full part. The buffer is allocated at
    /// exactly one part and handed over whole when full (never grown, split
    /// or doubled), so an upload holds at most one part.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), ObjStoreError> {
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

    async fn send_part(&mut self, part: Bytes) -> Result<(), ObjStoreError> {
        let r = &self.remote;
        let path = &self.path;
        let timeout = r.opts.timeout;
        let timed_out = || ObjStoreError::Timeout {
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
            Ok(Err(e)) => Err(ObjStoreError::Store {
                op: "put_part",
                path: path.to_string(),
                source: e,
            }),
            Err(_) => Err(timed_out()),
        }
    }

    /// Sends what is buffered as the last part and completes the object.
    /// Returns the object's size.
    pub async fn finish(mut self) -> Result<u64, ObjStoreError> {
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
            Ok(Err(e)) => ObjStoreError::Store {
                op: "complete_multipart",
                path: self.path.to_string(),
                source: e,
            },
            Err(_) => ObjStoreError::Timeout {
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
