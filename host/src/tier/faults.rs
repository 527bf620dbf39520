//! Fault injection for object stores, used by tests of the tiering code.
//!
//! Owns [`FaultyStore`]: a wrapper around a real `Arc<dyn ObjectStore>`
//! (in-memory, local file, S3) that counts every call per [`Op`] and, per
//! injected rule, makes it fail, slow down or hang ([`Fault`]) before
//! delegating. Mapping: `put_opts` and starting a multipart upload → `Put`;
//! `get_opts`, `get_ranges` → `Get` (`head: true` → `Head`); `delete_stream`
//! → `Delete` per path; `list*` → `List`; `copy_opts`, `rename_opts` →
//! `Copy`; the upload's `put_part`, `complete`, `abort` → `MultipartPart`,
//! `MultipartComplete`, `MultipartAbort`. A call is counted and its rule
//! picked when the method is called (for deletes: as each path is pulled);
//! the fault acts when the returned future or stream is polled.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};

/// The kind of object store call a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Put,
    Get,
    Head,
    Delete,
    List,
    MultipartPart,
    MultipartComplete,
    MultipartAbort,
    Copy,
}

/// What happens to a call that a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fail with `object_store::Error::Generic { store: "faulty", .. }`.
    Error,
    /// Sleep, then perform the call.
    Delay(Duration),
    /// Never complete; the caller must time out.
    Hang,
}

#[derive(Debug)]
struct Rule {
    op: Op,
    path_contains: Option<String>,
    fault: Fault,
    /// Matching calls still to let through before the rule is active.
    skip: u64,
    /// Matching calls still to fault; `None` = until cleared.
    remaining: Option<u64>,
}

impl Rule {
    fn matches(&self, op: Op, paths: &[&str]) -> bool {
        self.op == op
            && self
                .path_contains
                .as_deref()
                .is_none_or(|needle| paths.iter().any(|p| p.contains(needle)))
    }
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    calls: HashMap<Op, u64>,
}

/// State shared by the store, its multipart uploads and its streams.
#[derive(Debug, Default)]
struct Shared(Mutex<State>);

/// The outcome of consulting the rules for one call.
enum Verdict {
    Pass,
    Fail(object_store::Error),
    Delay(Duration),
    Hang,
}

impl Verdict {
    async fn enact(self) -> Result<()> {
        match self {
            Verdict::Pass => Ok(()),
            Verdict::Fail(e) => Err(e),
            Verdict::Delay(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Verdict::Hang => match std::future::pending::<Infallible>().await {},
        }
    }
}

impl Shared {
    async fn gate(&self, op: Op, paths: &[&str]) -> Result<()> {
        self.check(op, paths).enact().await
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one call of `op` on `paths` and picks its fault: rules are
    /// checked in insertion order and the first active matching one applies.
    /// Every matching rule still letting calls through counts this call.
    fn check(&self, op: Op, paths: &[&str]) -> Verdict {
        let fault = {
            let mut state = self.lock();
            *state.calls.entry(op).or_default() += 1;
            let mut chosen = None;
            for rule in state.rules.iter_mut().filter(|r| r.matches(op, paths)) {
                if rule.skip > 0 {
                    rule.skip -= 1;
                } else if chosen.is_none() && rule.remaining != Some(0) {
                    if let Some(n) = rule.remaining.as_mut() {
                        *n -= 1;
                    }
                    chosen = Some(rule.fault);
                }
            }
            state.rules.retain(|r| r.remaining != Some(0));
            chosen
        };
        let Some(fault) = fault else { return Verdict::Pass };
        let target = paths.join(" -> ");
        tracing::debug!(?op, ?fault, path = %target, "faulty store: injecting fault");
        match fault {
            Fault::Error => Verdict::Fail(object_store::Error::Generic {
                store: "faulty",
                source: format!("injected fault: {op:?} of '{target}'").into(),
            }),
            Fault::Delay(d) => Verdict::Delay(d),
            Fault::Hang => Verdict::Hang,
        }
    }
}

/// Runs `verdict` when first polled, then yields `inner` (or the injected error).
fn gated<T: Send + 'static>(verdict: Verdict, inner: BoxStream<'static, Result<T>>) -> BoxStream<'static, Result<T>> {
    if let Verdict::Pass = verdict {
        return inner;
    }
    stream::once(async move {
        match verdict.enact().await {
            Ok(()) => inner,
            Err(e) => stream::iter([Err(e)]).boxed(),
        }
    })
    .flatten()
    .boxed()
}

/// An [`ObjectStore`] that delegates to a real store after applying injected
/// faults. See the module documentation.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    shared: Arc<Shared>,
}

impl FaultyStore {
    /// Wraps `inner`; no faults are injected yet.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<FaultyStore> {
        let shared = Arc::default();
        Arc::new(FaultyStore { inner, shared })
    }

    /// The wrapped store (calls on it bypass faults and counters).
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// Applies `fault` to the next `times` calls of `op` (`None` = until cleared).
    pub fn inject(&self, op: Op, fault: Fault, times: Option<u64>) {
        self.add(op, None, 0, fault, times);
    }

    /// Like [`FaultyStore::inject`], for calls whose path (either path of a
    /// copy; the prefix of a list, "" for none) contains `path_contains`.
    pub fn inject_matching(&self, op: Op, path_contains: &str, fault: Fault, times: Option<u64>) {
        self.add(op, Some(path_contains), 0, fault, times);
    }

    /// Lets the next `ok_calls` calls of `op` through, then applies `fault`
    /// to the following `times` calls (`None` = until cleared).
    pub fn fail_after(&self, op: Op, ok_calls: u64, fault: Fault, times: Option<u64>) {
        self.add(op, None, ok_calls, fault, times);
    }

    /// [`FaultyStore::fail_after`] for calls whose path contains
    /// `path_contains` (counting only those).
    pub fn fail_after_matching(&self, op: Op, path_contains: &str, ok_calls: u64, fault: Fault, times: Option<u64>) {
        self.add(op, Some(path_contains), ok_calls, fault, times);
    }

    fn add(&self, op: Op, path_contains: Option<&str>, skip: u64, fault: Fault, remaining: Option<u64>) {
        let path_contains = path_contains.map(str::to_owned);
        let rule = Rule {
            op,
            path_contains,
            fault,
            skip,
            remaining,
        };
        self.shared.lock().rules.push(rule);
    }

    /// Removes every rule. Call counters are kept.
    pub fn clear(&self) {
        self.shared.lock().rules.clear();
    }

    /// Number of calls of `op` so far, including faulted ones.
    pub fn calls(&self, op: Op) -> u64 {
        self.shared.lock().calls.get(&op).copied().unwrap_or(0)
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.shared.gate(Op::Put, &[location.as_ref()]).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.shared.gate(Op::Put, &[location.as_ref()]).await?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        let (shared, location) = (Arc::clone(&self.shared), location.clone());
        Ok(Box::new(FaultyUpload {
            inner,
            shared,
            location,
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { Op::Head } else { Op::Get };
        self.shared.gate(op, &[location.as_ref()]).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.shared.gate(Op::Get, &[location.as_ref()]).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let shared = Arc::clone(&self.shared);
        let locations = locations
            .then(move |location| {
                let verdict = location.as_ref().ok().map(|p| shared.check(Op::Delete, &[p.as_ref()]));
                async move {
                    let location = location?;
                    if let Some(verdict) = verdict {
                        verdict.enact().await?;
                    }
                    Ok(location)
                }
            })
            .boxed();
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let verdict = self.shared.check(Op::List, &[prefix.map_or("", Path::as_ref)]);
        gated(verdict, self.inner.list(prefix))
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        let verdict = self.shared.check(Op::List, &[prefix.map_or("", Path::as_ref)]);
        gated(verdict, self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.shared.gate(Op::List, &[prefix.map_or("", Path::as_ref)]).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.shared.gate(Op::Copy, &[from.as_ref(), to.as_ref()]).await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.shared.gate(Op::Copy, &[from.as_ref(), to.as_ref()]).await?;
        self.inner.rename_opts(from, to, options).await
    }
}

/// A multipart upload of a [`FaultyStore`]; each part, the completion and
/// the abort consult the store's rules.
#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    shared: Arc<Shared>,
    location: Path,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let verdict = self.shared.check(Op::MultipartPart, &[self.location.as_ref()]);
        // The inner part is started now (part order is fixed at call time),
        // unless the part is to fail or hang, in which case it never starts.
        let part = match verdict {
            Verdict::Pass | Verdict::Delay(_) => Some(self.inner.put_part(data)),
            Verdict::Fail(_) | Verdict::Hang => None,
        };
        Box::pin(async move {
            verdict.enact().await?;
            match part {
                Some(part) => part.await,
                None => Ok(()),
            }
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.shared
            .gate(Op::MultipartComplete, &[self.location.as_ref()])
            .await?;
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.shared.gate(Op::MultipartAbort, &[self.location.as_ref()]).await?;
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
