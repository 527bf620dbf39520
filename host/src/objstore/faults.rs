//! Fault injection for object stores, used by tests of the tiering code.
//!
//! Owns [`FaultyStore`]: a wrapper around a real `Arc<dyn ObjectStore>`
//! (in-memory, local file, S3) that counts every call per [`Op`] and, per
//! injected rule, makes it fail, slow down or hang ([`Fault`]), or holds it
//! at a [`Gate`] until the test releases it, before delegating. A gate
//! orders events without sleeping: a test waits until the call it targets
//! has arrived, does what must happen meanwhile, then releases it.
//! Mapping: `put_opts` and starting a multipart upload → `Put`;
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

/// Calls held by [`FaultyStore::hold_matching`]: each one that reaches the
/// gate is counted and waits until [`Gate::release`]; then they go through,
/// and the rule is gone (later calls meet the other rules only).
#[derive(Debug)]
pub struct Gate {
    open: tokio::sync::watch::Sender<bool>,
    arrived: tokio::sync::watch::Sender<u64>,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            open: tokio::sync::watch::Sender::new(false),
            arrived: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Lets the held calls through and retires the gate's rule.
    pub fn release(&self) {
        self.open.send_replace(true);
    }

    /// Calls that reached the gate so far.
    pub fn arrived(&self) -> u64 {
        *self.arrived.borrow()
    }

    /// Waits until at least `n` calls reached the gate. Unbounded: wrap it
    /// in a timeout.
    pub async fn wait_arrived(&self, n: u64) {
        let mut rx = self.arrived.subscribe();
        let _ = rx.wait_for(|a| *a >= n).await;
    }

    async fn pass(&self) {
        self.arrived.send_modify(|a| *a += 1);
        let mut rx = self.open.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

/// What a rule does to the calls it applies to.
#[derive(Debug, Clone)]
enum Action {
    Fault(Fault),
    Hold(Arc<Gate>),
}

#[derive(Debug)]
struct Rule {
    op: Op,
    path_contains: Option<String>,
    action: Action,
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

    /// Whether the rule can apply to no call any more: it faulted its
    /// last call, or its gate was released.
    fn spent(&self) -> bool {
        self.remaining == Some(0) || matches!(&self.action, Action::Hold(g) if *g.open.borrow())
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
    Hold(Arc<Gate>),
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
            Verdict::Hold(gate) => {
                gate.pass().await;
                Ok(())
            }
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

    /// Counts one call of `op` on `paths` and picks its fault or gate: rules
    /// are checked in insertion order and the first active matching one
    /// applies.
    /// Every matching rule still letting calls through counts this call.
    fn check(&self, op: Op, paths: &[&str]) -> Verdict {
        let fault = {
            let mut state = self.lock();
            *state.calls.entry(op).or_default() += 1;
            state.rules.retain(|r| !r.spent());
            let mut chosen = None;
            for rule in state.rules.iter_mut().filter(|r| r.matches(op, paths)) {
                if rule.skip > 0 {
                    rule.skip -= 1;
                } else if chosen.is_none() && rule.remaining != Some(0) {
                    if let Some(n) = rule.remaining.as_mut() {
                        *n -= 1;
                    }
                    chosen = Some(rule.action.clone());
                }
            }
            state.rules.retain(|r| !r.spent());
            chosen
        };
        let target = paths.join(" -> ");
        let fault = match fault {
            None => return Verdict::Pass,
            Some(Action::Hold(gate)) => {
                tracing::debug!(?op, path = %target, "faulty store: holding call at a gate");
                return Verdict::Hold(gate);
            }
            Some(Action::Fault(fault)) => fault,
        };
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
        self.add(op, None, 0, Action::Fault(fault), times);
    }

    /// Like [`FaultyStore::inject`], for calls whose path (either path of a
    /// copy; the prefix of a list, "" for none) contains `path_contains`.
    pub fn inject_matching(&self, op: Op, path_contains: &str, fault: Fault, times: Option<u64>) {
        self.add(op, Some(path_contains), 0, Action::Fault(fault), times);
    }

    /// Lets the next `ok_calls` calls of `op` through, then applies `fault`
    /// to the following `times` calls (`None` = until cleared).
    pub fn fail_after(&self, op: Op, ok_calls: u64, fault: Fault, times: Option<u64>) {
        self.add(op, None, ok_calls, Action::Fault(fault), times);
    }

    /// [`FaultyStore::fail_after`] for calls whose path contains
    /// `path_contains` (counting only those).
    pub fn fail_after_matching(&self, op: Op, path_contains: &str, ok_calls: u64, fault: Fault, times: Option<u64>) {
        self.add(op, Some(path_contains), ok_calls, Action::Fault(fault), times);
    }

    /// Holds the next `times` calls of `op` whose path contains
    /// `path_contains` (`None` = every one until released or cleared) at
    /// the returned gate until it is released. A held call is counted when
    /// it is made, like any other, and reaches the gate when it would act
    /// (see the module documentation); a held multipart part is started at
    /// once and completes once released, like a delayed one. A call held
    /// longer than its caller's timeout times out: release the gate in time.
    pub fn hold_matching(&self, op: Op, path_contains: &str, times: Option<u64>) -> Arc<Gate> {
        let gate = Arc::new(Gate::new());
        self.add(op, Some(path_contains), 0, Action::Hold(gate.clone()), times);
        gate
    }

    fn add(&self, op: Op, path_contains: Option<&str>, skip: u64, action: Action, remaining: Option<u64>) {
        let path_contains = path_contains.map(str::to_owned);
        let rule = Rule {
            op,
            path_contains,
            action,
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
            Verdict::Pass | Verdict::Delay(_) | Verdict::Hold(_) => Some(self.inner.put_part(data)),
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
