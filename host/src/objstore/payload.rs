//! Turning a `GetResult` into bytes. A file store's answer is an open file;
//! `object_store` reads it into a zero-filled buffer, and on a node serving
//! consumers from the embedded file store that zero fill cost as much as the
//! read itself. Here the file is read straight into uninitialised capacity
//! (std's `read_to_end` over `File::read_buf`). Other stores' streams are
//! collected as `object_store` does.
//!
//! Invariant: the bytes returned are exactly the result's range, or an error
//! (a file shorter than the range is an error, never a short answer).

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

use bytes::Bytes;
use object_store::{GetResult, GetResultPayload};

/// The bytes of `r`'s range.
pub(super) async fn bytes(r: GetResult) -> object_store::Result<Bytes> {
    match r.payload {
        GetResultPayload::File(file, path) => {
            let range = r.range;
            let read = tokio::task::spawn_blocking(move || read_file(file, &path, range));
            match read.await {
                Ok(r) => r,
                Err(e) => Err(generic(format!("file read task failed: {e}"))),
            }
        }
        payload @ GetResultPayload::Stream(_) => {
            GetResult {
                payload,
                meta: r.meta,
                range: r.range,
                attributes: r.attributes,
                extensions: r.extensions,
            }
            .bytes()
            .await
        }
    }
}

fn read_file(mut file: std::fs::File, path: &std::path::Path, range: Range<u64>) -> object_store::Result<Bytes> {
    let want = range.end.saturating_sub(range.start);
    let cap = usize::try_from(want).map_err(|_| generic(format!("{}: range of {want} bytes", path.display())))?;
    let io = |e: std::io::Error| generic(format!("{}: {e}", path.display()));
    file.seek(SeekFrom::Start(range.start)).map_err(io)?;
    let mut buf = Vec::with_capacity(cap);
    file.take(want).read_to_end(&mut buf).map_err(io)?;
    if buf.len() != cap {
        return Err(generic(format!(
            "{}: read {} of {want} bytes at {}",
            path.display(),
            buf.len(),
            range.start
        )));
    }
    Ok(Bytes::from(buf))
}

fn generic(msg: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: msg.into(),
    }
}

#[cfg(test)]
mod tests {
    use object_store::local::LocalFileSystem;
    use object_store::path::Path;
    use object_store::{GetOptions, ObjectStore, ObjectStoreExt};

    #[tokio::test]
    async fn file_ranges_read_exactly_and_short_files_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalFileSystem::new_with_prefix(dir.path()).expect("store");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let path = Path::from("a/b.seg");
        store.put(&path, data.clone().into()).await.expect("put");
        for range in [0..10_000u64, 17..9_000, 9_999..10_000] {
            let r = store
                .get_opts(&path, GetOptions::new().with_range(Some(range.clone())))
                .await
                .expect("get");
            let got = super::bytes(r).await.expect("bytes");
            assert_eq!(&got[..], &data[range.start as usize..range.end as usize]);
        }
        // The file shrinks after the store answered: an error, not a short read.
        let r = store
            .get_opts(&path, GetOptions::new().with_range(Some(100..10_000)))
            .await
            .expect("get");
        std::fs::write(dir.path().join("a/b.seg"), &data[..500]).expect("truncate");
        let err = super::bytes(r).await.expect_err("short file");
        assert!(err.to_string().contains("read 400 of 9900 bytes"), "{err}");
    }
}
