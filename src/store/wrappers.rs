//! Store wrappers: [`TimeoutStore`] bounds every request (the engine uses
//! it); for tests and benchmarks, [`LatencyStore`] makes a fast store behave
//! like a remote one and counts requests by kind, and [`FaultyStore`] fails
//! requests on a schedule, at random (seeded), or after a crash point, and
//! [`GateStore`] holds chosen requests until released.
//!
//! Each wraps any [`Store`] and keeps no lock across an await.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Either};
use object_store::path::Path;
use talus_actors::Runtime;
use talus_actors::runtime::{Rng, SeededRng};

use super::error::{Op, StoreError};
use super::object::{ByteRange, Fetched, ObjectInfo, PutMode, Store, StoreResult};

/// A store that wraps another and acts around each request: every wrapper
/// here implements this, and one blanket impl makes it a [`Store`].
pub trait Layer: fmt::Debug + Send + Sync + 'static {
    /// Runs `request` (built against the wrapped store) as request kind
    /// `op` on `path`; `requests` is how many store requests it stands for
    /// and `sent` how many bytes it uploads.
    fn around<T: Payload>(
        &self,
        op: Op,
        path: &Path,
        requests: Requests,
        request: impl FnOnce(&dyn Store) -> BoxFuture<'static, StoreResult<T>>,
    ) -> BoxFuture<'static, StoreResult<T>>;
}

/// How much one call to a [`Layer`] stands for: store requests and bytes
/// uploaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requests {
    /// Store requests.
    pub count: u64,
    /// Bytes uploaded.
    pub sent: u64,
}

impl Requests {
    const ONE: Requests = Requests { count: 1, sent: 0 };
}

/// What a request's answer weighs: the bytes it downloaded.
pub trait Payload: Send + 'static {
    /// Bytes downloaded (0 by default).
    fn payload_bytes(&self) -> u64 {
        0
    }
}

impl Payload for Fetched {
    fn payload_bytes(&self) -> u64 {
        self.bytes.len() as u64
    }
}

impl Payload for () {}
impl Payload for ObjectInfo {}
impl Payload for Vec<ObjectInfo> {}

impl<L: Layer> Store for L {
    fn get(&self, path: &Path, range: ByteRange) -> BoxFuture<'static, StoreResult<Fetched>> {
        self.around(range.op(), path, Requests::ONE, |store| store.get(path, range))
    }

    fn head(&self, path: &Path) -> BoxFuture<'static, StoreResult<ObjectInfo>> {
        self.around(Op::Head, path, Requests::ONE, |store| store.head(path))
    }

    fn put(&self, path: &Path, bytes: Bytes, mode: PutMode) -> BoxFuture<'static, StoreResult<()>> {
        let requests = Requests {
            count: 1,
            sent: bytes.len() as u64,
        };
        self.around(Op::Put, path, requests, |store| store.put(path, bytes, mode))
    }

    fn put_multipart(&self, path: &Path, parts: Vec<Bytes>) -> BoxFuture<'static, StoreResult<()>> {
        let requests = Requests {
            count: parts.len() as u64,
            sent: parts.iter().map(|part| part.len() as u64).sum(),
        };
        self.around(Op::MultipartPart, path, requests, |store| {
            store.put_multipart(path, parts)
        })
    }

    fn list(&self, prefix: &Path) -> BoxFuture<'static, StoreResult<Vec<ObjectInfo>>> {
        self.around(Op::List, prefix, Requests::ONE, |store| store.list(prefix))
    }

    fn delete(&self, path: &Path) -> BoxFuture<'static, StoreResult<()>> {
        self.around(Op::Delete, path, Requests::ONE, |store| store.delete(path))
    }
}

/// Requests seen, by kind, and bytes moved. Shared: clone the `Arc` to
/// watch a store.
#[derive(Debug, Default)]
pub struct RequestCounts {
    counts: [AtomicU64; Op::ALL.len()],
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
}

impl RequestCounts {
    fn add(&self, op: Op, requests: Requests) {
        self.counts[op as usize].fetch_add(requests.count, Ordering::Relaxed);
        self.bytes_written.fetch_add(requests.sent, Ordering::Relaxed);
    }

    /// Bytes downloaded by successful reads.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// Bytes uploaded (every attempt, as the store is asked to take them).
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    /// Requests of kind `op`.
    pub fn get(&self, op: Op) -> u64 {
        self.counts[op as usize].load(Ordering::Relaxed)
    }

    /// Reads of any kind (`get` and `get_range`).
    pub fn reads(&self) -> u64 {
        self.get(Op::Get) + self.get(Op::GetRange)
    }

    /// Requests of every kind.
    pub fn total(&self) -> u64 {
        Op::ALL.iter().map(|op| self.get(*op)).sum()
    }

    /// The non-zero counts, by kind name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        Op::ALL
            .iter()
            .map(|op| (op.name(), self.get(*op)))
            .filter(|(_, count)| *count > 0)
            .collect()
    }

    /// Sets every count to zero.
    pub fn reset(&self) {
        for count in self.counts.iter().chain([&self.bytes_read, &self.bytes_written]) {
            count.store(0, Ordering::Relaxed);
        }
    }
}

/// Adds a fixed delay (on the runtime's clock, so virtual under sim) before
/// every request, and counts requests by kind. Each part of a multipart
/// upload counts as one request; the upload waits the delay once.
#[derive(Clone)]
pub struct LatencyStore {
    inner: Arc<dyn Store>,
    runtime: Runtime,
    latency: Duration,
    counts: Arc<RequestCounts>,
}

impl fmt::Debug for LatencyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyStore")
            .field("inner", &self.inner)
            .field("latency", &self.latency)
            .finish()
    }
}

impl LatencyStore {
    /// `inner` with `latency` added before each request.
    pub fn new(inner: Arc<dyn Store>, runtime: Runtime, latency: Duration) -> Self {
        LatencyStore {
            inner,
            runtime,
            latency,
            counts: Arc::default(),
        }
    }

    /// `inner` with `latency` added before each request, counted in
    /// `counts` (which another store may share: a database's WAL store and
    /// main store counted together).
    pub fn with_counts(inner: Arc<dyn Store>, runtime: Runtime, latency: Duration, counts: Arc<RequestCounts>) -> Self {
        LatencyStore {
            inner,
            runtime,
            latency,
            counts,
        }
    }

    /// The request counts, shared (they keep counting).
    pub fn counts(&self) -> Arc<RequestCounts> {
        self.counts.clone()
    }
}

impl Layer for LatencyStore {
    fn around<T: Payload>(
        &self,
        op: Op,
        _path: &Path,
        requests: Requests,
        request: impl FnOnce(&dyn Store) -> BoxFuture<'static, StoreResult<T>>,
    ) -> BoxFuture<'static, StoreResult<T>> {
        self.counts.add(op, requests);
        let counts = self.counts.clone();
        let request = request(&*self.inner);
        let delay = (!self.latency.is_zero()).then(|| self.runtime.sleep(self.latency));
        async move {
            if let Some(delay) = delay {
                delay.await;
            }
            let answer = request.await;
            if let Ok(answer) = &answer {
                counts.bytes_read.fetch_add(answer.payload_bytes(), Ordering::Relaxed);
            }
            answer
        }
        .boxed()
    }
}

/// How an injected fault shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The request never reaches the store.
    Lost,
    /// The request is carried out, then reported as failed (a timeout after
    /// the store acted: the ambiguous case retries must handle).
    LostReply,
}

#[derive(Debug, Default)]
struct FaultPlan {
    /// Requests seen so far (every kind).
    requests: u64,
    /// Request number (1-based) → fault.
    scheduled: BTreeMap<u64, Fault>,
    /// Fail this fraction of requests of these kinds (all kinds if empty).
    random: Option<(f64, Vec<Op>, Fault)>,
    /// Requests after this number fail; `Some(0)` fails everything.
    crash_after: Option<u64>,
    injected: u64,
}

/// Fails requests of the store it wraps, deterministically.
#[derive(Clone)]
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    plan: Arc<Mutex<FaultPlan>>,
    rng: Arc<SeededRng>,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("inner", &self.inner)
            .field("plan", &*self.plan())
            .finish()
    }
}

impl FaultyStore {
    /// A wrapper that injects nothing until told to; `seed` fixes which
    /// requests a random fraction hits.
    pub fn new(inner: Arc<dyn Store>, seed: u64) -> Self {
        FaultyStore {
            inner,
            plan: Arc::default(),
            rng: Arc::new(SeededRng::new(seed)),
        }
    }

    fn plan(&self) -> MutexGuard<'_, FaultPlan> {
        // A panic while holding the lock cannot leave the plan half-updated
        // in a way that matters to a test wrapper.
        self.plan.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The `nth` request from now (1 = the next one) fails.
    pub fn fail_request(&self, nth: u64, fault: Fault) {
        let mut plan = self.plan();
        let at = plan.requests + nth.max(1);
        plan.scheduled.insert(at, fault);
    }

    /// Fails `fraction` (0.0..=1.0) of future requests of kinds `ops` (every
    /// kind if empty), chosen by the seeded RNG.
    pub fn fail_fraction(&self, fraction: f64, ops: &[Op], fault: Fault) {
        self.plan().random = Some((fraction.clamp(0.0, 1.0), ops.to_vec(), fault));
    }

    /// Every request after the next `requests` ones fails: the process
    /// "crashed" there. `crash_after(0)` crashes now.
    pub fn crash_after(&self, requests: u64) {
        let mut plan = self.plan();
        plan.crash_after = Some(plan.requests + requests);
    }

    /// Removes every fault: the store works again.
    pub fn heal(&self) {
        let mut plan = self.plan();
        plan.scheduled.clear();
        plan.random = None;
        plan.crash_after = None;
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.plan().injected
    }

    /// Decides the fate of the next request.
    fn next_fault(&self, op: Op) -> Option<Fault> {
        let mut plan = self.plan();
        plan.requests += 1;
        let number = plan.requests;
        let crashed = plan.crash_after.is_some_and(|after| number > after);
        let fault = if crashed {
            Some(Fault::Lost)
        } else if let Some(fault) = plan.scheduled.remove(&number) {
            Some(fault)
        } else {
            match &plan.random {
                Some((fraction, ops, fault)) if ops.is_empty() || ops.contains(&op) => {
                    (self.rng.next_unit() < *fraction).then_some(*fault)
                }
                _ => None,
            }
        };
        plan.injected += u64::from(fault.is_some());
        fault
    }
}

impl Layer for FaultyStore {
    fn around<T: Payload>(
        &self,
        op: Op,
        path: &Path,
        _requests: Requests,
        request: impl FnOnce(&dyn Store) -> BoxFuture<'static, StoreResult<T>>,
    ) -> BoxFuture<'static, StoreResult<T>> {
        let injected = |fault: Fault| StoreError::unavailable(op, path, format!("injected fault ({fault:?})"));
        match self.next_fault(op) {
            None => request(&*self.inner),
            Some(Fault::Lost) => futures::future::ready(Err(injected(Fault::Lost))).boxed(),
            Some(Fault::LostReply) => {
                let error = injected(Fault::LostReply);
                let request = request(&*self.inner);
                async move {
                    let _ = request.await;
                    Err(error)
                }
                .boxed()
            }
        }
    }
}

/// Fails any request that takes longer than a limit, measured on the
/// runtime's clock, with [`StoreError::Unavailable`]; the request is dropped.
/// Every engine request passes through it, so it also counts them
/// ([`crate::metrics::STORE_REQUESTS`]).
#[derive(Clone)]
pub struct TimeoutStore {
    inner: Arc<dyn Store>,
    runtime: Runtime,
    limit: Duration,
}

impl fmt::Debug for TimeoutStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutStore")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .finish()
    }
}

impl TimeoutStore {
    /// `inner` with every request limited to `limit`.
    pub fn new(inner: Arc<dyn Store>, runtime: Runtime, limit: Duration) -> Self {
        TimeoutStore { inner, runtime, limit }
    }
}

impl Layer for TimeoutStore {
    fn around<T: Payload>(
        &self,
        op: Op,
        path: &Path,
        requests: Requests,
        request: impl FnOnce(&dyn Store) -> BoxFuture<'static, StoreResult<T>>,
    ) -> BoxFuture<'static, StoreResult<T>> {
        crate::metrics::store_requests(op.name(), requests.count);
        let request = request(&*self.inner);
        let (deadline, limit, path) = (self.runtime.sleep(self.limit), self.limit, path.clone());
        async move {
            match futures::future::select(request, deadline).await {
                Either::Left((outcome, _)) => outcome,
                Either::Right(((), _)) => Err(StoreError::unavailable(op, &path, format!("timed out after {limit:?}"))),
            }
        }
        .boxed()
    }
}

#[derive(Debug, Default)]
struct GateState {
    /// Hold requests of this kind whose path contains this text, and how
    /// many more of them to hold.
    rule: Option<(Op, String, usize)>,
    /// Held requests, released by [`GateStore::release`].
    held: Vec<futures::channel::oneshot::Sender<()>>,
    /// Tasks waiting for the held count to reach a number.
    watchers: Vec<(usize, futures::channel::oneshot::Sender<()>)>,
}

/// Holds chosen requests back until told to let them go: tests use it to
/// make one upload finish after a later one, or to make a store slow at an
/// exact moment instead of by a timer.
#[derive(Clone)]
pub struct GateStore {
    inner: Arc<dyn Store>,
    state: Arc<Mutex<GateState>>,
}

impl fmt::Debug for GateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateStore").field("inner", &self.inner).finish()
    }
}

impl GateStore {
    /// `inner` behind an open gate.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        GateStore {
            inner,
            state: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Holds the next `count` requests of kind `op` whose path contains
    /// `pattern` (`usize::MAX`: all of them, until [`GateStore::release`]).
    pub fn hold(&self, op: Op, pattern: &str, count: usize) {
        self.state().rule = Some((op, pattern.to_owned(), count));
    }

    /// Requests held right now.
    pub fn held(&self) -> usize {
        self.state().held.len()
    }

    /// Completes once at least `count` requests are held.
    pub async fn wait_held(&self, count: usize) {
        let receiver = {
            let mut state = self.state();
            if state.held.len() >= count {
                return;
            }
            let (sender, receiver) = futures::channel::oneshot::channel();
            state.watchers.push((count, sender));
            receiver
        };
        let _ = receiver.await;
    }

    /// Lets every held request go and stops holding new ones.
    pub fn release(&self) {
        let mut state = self.state();
        state.rule = None;
        for held in state.held.drain(..) {
            let _ = held.send(());
        }
    }

    /// Whether this request is to be held; if so, the receiver it waits on.
    fn admit(&self, op: Op, path: &Path) -> Option<futures::channel::oneshot::Receiver<()>> {
        let mut state = self.state();
        let (rule_op, pattern, remaining) = state.rule.as_mut()?;
        if *rule_op != op || *remaining == 0 || !path.as_ref().contains(pattern.as_str()) {
            return None;
        }
        if *remaining != usize::MAX {
            *remaining -= 1;
        }
        let (sender, receiver) = futures::channel::oneshot::channel();
        state.held.push(sender);
        let held = state.held.len();
        let (ready, waiting): (Vec<_>, Vec<_>) = state.watchers.drain(..).partition(|(count, _)| *count <= held);
        state.watchers = waiting;
        for (_, watcher) in ready {
            let _ = watcher.send(());
        }
        Some(receiver)
    }
}

impl Layer for GateStore {
    fn around<T: Payload>(
        &self,
        op: Op,
        path: &Path,
        _requests: Requests,
        request: impl FnOnce(&dyn Store) -> BoxFuture<'static, StoreResult<T>>,
    ) -> BoxFuture<'static, StoreResult<T>> {
        let gate = self.admit(op, path);
        let request = request(&*self.inner);
        match gate {
            None => request,
            Some(gate) => async move {
                // A dropped sender (the gate itself dropped) lets it go too.
                let _ = gate.await;
                request.await
            }
            .boxed(),
        }
    }
}
