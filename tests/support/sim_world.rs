//! The simulated world of `tests/sim.rs`: one in-memory object store that
//! outlives every simulated process, checked at each delete
//! ([`AuditStore`]) and at each manifest write ([`EpochWatch`]), and reached
//! by each process through its own [`ProcessStore`], which adds seeded
//! latency and request errors and goes dead when the process is killed.
//!
//! Layers, outermost first: the `Db`'s own timeout → [`ProcessStore`] →
//! [`EpochWatch`] → [`AuditStore`] → [`SimClock`] → in-memory store.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use talusdb::actors::Runtime;
use talusdb::actors::runtime::{Rng, SeededRng};
use talusdb::internals::decode_envelope;
use talusdb::manifest::{Manifest, VersionedOptions, VersionedStore};
use talusdb::store::{
    ByteRange, Fetched, Layer, ObjectInfo, ObjectStoreAdapter, Op, Payload, PutMode, Requests, Store, StoreError,
    StoreResult,
};

use super::audit::AuditStore;

/// The database's root in the simulated store.
pub const ROOT: &str = "db";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the store does to a process's requests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Fraction of requests that fail (half before reaching the store, half
    /// after it acted: the lost reply retries must cope with).
    pub error_fraction: f64,
    /// Each request waits a random time up to this first.
    pub max_latency: Duration,
}

/// One process's view of the shared store. Requests wait their latency,
/// then wait while the process is paused (a stopped VM, a long GC pause),
/// then fail if the process has been killed: nothing a dead process does
/// reaches the store afterwards.
#[derive(Clone)]
pub struct ProcessStore {
    inner: Arc<dyn Store>,
    runtime: Runtime,
    rng: Arc<SeededRng>,
    faults: Arc<Mutex<Faults>>,
    dead: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    injected: Arc<AtomicU64>,
    /// Which process store of the world this is (1 for the first made),
    /// as `TALUS_SIM_VERBOSE` prints it.
    id: u64,
}

/// How often a paused process's requests look whether it runs again.
const PAUSE_CHECK: Duration = Duration::from_millis(10);

impl fmt::Debug for ProcessStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessStore")
            .field("dead", &self.dead.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl ProcessStore {
    /// The same process's view of another store (its WAL store): the same
    /// faults, latency, pauses and death.
    fn over(&self, inner: Arc<dyn Store>, stream: u64) -> ProcessStore {
        ProcessStore {
            inner,
            rng: Arc::new(SeededRng::new(self.rng.next_u64() ^ stream)),
            ..self.clone()
        }
    }

    /// The process dies: every request not yet carried out fails.
    pub fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
    }

    /// The process stops: its requests wait (its timers go on) until
    /// [`ProcessStore::resume`].
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }
}

impl Layer for ProcessStore {
    fn around<T: Payload>(
        &self,
        op: Op,
        path: &Path,
        _requests: Requests,
        request: impl FnOnce(&dyn Store) -> BoxFuture<'static, StoreResult<T>>,
    ) -> BoxFuture<'static, StoreResult<T>> {
        let faults = *lock(&self.faults);
        let latency = faults.max_latency.mul_f64(self.rng.next_unit());
        let fault = self.rng.next_unit() < faults.error_fraction;
        let reply_lost = fault && self.rng.next_unit() < 0.5;
        // Every layer below builds its future lazily: nothing happens
        // before it is polled.
        let request = request(&*self.inner);
        let sleep = (!latency.is_zero()).then(|| self.runtime.sleep(latency));
        let (dead, paused, injected, path) = (
            self.dead.clone(),
            self.paused.clone(),
            self.injected.clone(),
            path.clone(),
        );
        let runtime = self.runtime.clone();
        // With `TALUS_SIM_VERBOSE`, every write or delete of a WAL table or
        // a manifest is printed with what came of it.
        let id = self.id;
        let verbose = std::env::var_os("TALUS_SIM_VERBOSE").is_some()
            && matches!(op, Op::Put | Op::Delete | Op::MultipartPart)
            && (path.as_ref().contains("wal/") || path.as_ref().contains("manifest/"));
        async move {
            if let Some(sleep) = sleep {
                sleep.await;
            }
            // Simulated time: the checks cost nothing while the world waits.
            while paused.load(Ordering::SeqCst) && !dead.load(Ordering::SeqCst) {
                runtime.sleep(PAUSE_CHECK).await;
            }
            if dead.load(Ordering::SeqCst) {
                return Err(StoreError::unavailable(op, &path, "the process was killed"));
            }
            if fault {
                injected.fetch_add(1, Ordering::Relaxed);
                if reply_lost {
                    let _ = request.await;
                }
                if verbose {
                    eprintln!(
                        "[{:>10?}] process store {id}: {op:?} {path}: injected fault, reply lost {reply_lost}",
                        runtime.now()
                    );
                }
                return Err(StoreError::unavailable(op, &path, "injected fault"));
            }
            let result = request.await;
            if verbose {
                eprintln!(
                    "[{:>10?}] process store {id}: {op:?} {path}: ok {}",
                    runtime.now(),
                    result.is_ok()
                );
            }
            result
        }
        .boxed()
    }
}

/// Checks every manifest version written: writer and compactor epochs never
/// decrease from one version to the next.
#[derive(Clone)]
pub struct EpochWatch {
    inner: Arc<dyn Store>,
    manifests: VersionedStore<Manifest>,
    /// Epochs (writer, compactor) of every version written, by id.
    epochs: Arc<Mutex<BTreeMap<u64, (u64, u64)>>>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl fmt::Debug for EpochWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochWatch").finish_non_exhaustive()
    }
}

impl EpochWatch {
    fn new(inner: Arc<dyn Store>, runtime: Runtime) -> Self {
        let manifests = VersionedStore::new(inner.clone(), ROOT.into(), runtime, VersionedOptions::default());
        EpochWatch {
            inner,
            manifests,
            epochs: Arc::default(),
            violations: Arc::default(),
        }
    }

    fn record(&self, id: u64, bytes: &[u8]) {
        let manifest = match decode_envelope::<Manifest>(bytes) {
            Ok(manifest) => manifest,
            Err(error) => {
                lock(&self.violations).push(format!("manifest {id} was written undecodable: {error}"));
                return;
            }
        };
        let now = (manifest.writer_epoch, manifest.compactor_epoch);
        let mut epochs = lock(&self.epochs);
        let before = epochs.range(..id).next_back().map(|(id, epochs)| (*id, *epochs));
        let after = epochs.range(id + 1..).next().map(|(id, epochs)| (*id, *epochs));
        for (earlier, later, ids) in [
            before.map(|(other, epochs)| (epochs, now, (other, id))),
            after.map(|(other, epochs)| (now, epochs, (id, other))),
        ]
        .into_iter()
        .flatten()
        {
            if later.0 < earlier.0 || later.1 < earlier.1 {
                lock(&self.violations).push(format!(
                    "epochs went backwards from manifest {} (writer, compactor) = {earlier:?} to manifest {} = {later:?}",
                    ids.0, ids.1
                ));
            }
        }
        epochs.insert(id, now);
    }

    /// Manifest versions seen written.
    pub fn versions(&self) -> usize {
        lock(&self.epochs).len()
    }

    /// The highest (writer, compactor) epochs written.
    pub fn latest(&self) -> Option<(u64, u64)> {
        lock(&self.epochs).values().next_back().copied()
    }
}

impl Store for EpochWatch {
    fn get(&self, path: &Path, range: ByteRange) -> BoxFuture<'static, StoreResult<Fetched>> {
        self.inner.get(path, range)
    }

    fn head(&self, path: &Path) -> BoxFuture<'static, StoreResult<ObjectInfo>> {
        self.inner.head(path)
    }

    fn put(&self, path: &Path, bytes: Bytes, mode: PutMode) -> BoxFuture<'static, StoreResult<()>> {
        let (inner, watch, path) = (self.inner.clone(), self.clone(), path.clone());
        let id = self.manifests.parse_id(&path);
        async move {
            let result = inner.put(&path, bytes.clone(), mode).await;
            if let (Ok(()), Some(id)) = (&result, id) {
                watch.record(id, &bytes);
            }
            result
        }
        .boxed()
    }

    fn put_multipart(&self, path: &Path, parts: Vec<Bytes>) -> BoxFuture<'static, StoreResult<()>> {
        let (inner, path) = (self.inner.clone(), path.clone());
        async move { inner.put_multipart(&path, parts).await }.boxed()
    }

    fn list(&self, prefix: &Path) -> BoxFuture<'static, StoreResult<Vec<ObjectInfo>>> {
        self.inner.list(prefix)
    }

    fn delete(&self, path: &Path) -> BoxFuture<'static, StoreResult<()>> {
        self.inner.delete(path)
    }
}

/// Stamps every object with the simulation's wall clock instead of the
/// real one the in-memory store uses, so that ages the garbage collector
/// judges are ages in simulated time (a fence marker's retention holds
/// exactly as long as it should).
#[derive(Clone)]
pub struct SimClock {
    inner: Arc<dyn Store>,
    runtime: Runtime,
    written_ms: Arc<Mutex<HashMap<Path, u64>>>,
}

impl fmt::Debug for SimClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimClock").finish_non_exhaustive()
    }
}

impl SimClock {
    /// `inner`, its objects stamped with `runtime`'s wall clock.
    pub fn new(inner: Arc<dyn Store>, runtime: Runtime) -> Self {
        SimClock {
            inner,
            runtime,
            written_ms: Arc::default(),
        }
    }

    fn stamp(&self, mut info: ObjectInfo) -> ObjectInfo {
        if let Some(written) = lock(&self.written_ms).get(&info.path) {
            info.modified_ms = *written;
        }
        info
    }

    /// Records a write that succeeded at the simulation's now.
    fn wrote<T: Send + 'static>(
        &self,
        path: &Path,
        request: BoxFuture<'static, StoreResult<T>>,
    ) -> BoxFuture<'static, StoreResult<T>> {
        let (clock, path) = (self.clone(), path.clone());
        async move {
            let result = request.await;
            if result.is_ok() {
                lock(&clock.written_ms).insert(path, clock.runtime.wall_ms());
            }
            result
        }
        .boxed()
    }
}

impl Store for SimClock {
    fn get(&self, path: &Path, range: ByteRange) -> BoxFuture<'static, StoreResult<Fetched>> {
        self.inner.get(path, range)
    }

    fn head(&self, path: &Path) -> BoxFuture<'static, StoreResult<ObjectInfo>> {
        let (clock, request) = (self.clone(), self.inner.head(path));
        async move { request.await.map(|info| clock.stamp(info)) }.boxed()
    }

    fn put(&self, path: &Path, bytes: Bytes, mode: PutMode) -> BoxFuture<'static, StoreResult<()>> {
        self.wrote(path, self.inner.put(path, bytes, mode))
    }

    fn put_multipart(&self, path: &Path, parts: Vec<Bytes>) -> BoxFuture<'static, StoreResult<()>> {
        self.wrote(path, self.inner.put_multipart(path, parts))
    }

    fn list(&self, prefix: &Path) -> BoxFuture<'static, StoreResult<Vec<ObjectInfo>>> {
        let (clock, request) = (self.clone(), self.inner.list(prefix));
        async move {
            request
                .await
                .map(|infos| infos.into_iter().map(|info| clock.stamp(info)).collect())
        }
        .boxed()
    }

    fn delete(&self, path: &Path) -> BoxFuture<'static, StoreResult<()>> {
        self.inner.delete(path)
    }
}

/// Changes the faults every process sees (a client raising the error rate
/// for the length of one operation).
#[derive(Clone)]
pub struct FaultDial(Arc<Mutex<Faults>>);

impl FaultDial {
    pub fn get(&self) -> Faults {
        *lock(&self.0)
    }

    pub fn set(&self, faults: Faults) {
        *lock(&self.0) = faults;
    }
}

/// The store every simulated process shares, and its checks.
pub struct World {
    runtime: Runtime,
    memory: Arc<dyn Store>,
    /// A store of their own for the WAL tables, if the world has one: its
    /// memory, and the audited view processes reach it through.
    wal: Option<(Arc<dyn Store>, AuditStore)>,
    pub audit: AuditStore,
    pub epochs: EpochWatch,
    faults: Arc<Mutex<Faults>>,
    seed: u64,
    processes: u64,
    injected: Arc<AtomicU64>,
}

impl World {
    pub fn new(runtime: Runtime, seed: u64, faults: Faults) -> World {
        let memory: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let clock = Arc::new(SimClock::new(memory.clone(), runtime.clone()));
        let audit = AuditStore::new(clock, ROOT, runtime.clone());
        let epochs = EpochWatch::new(Arc::new(audit.clone()), runtime.clone());
        World {
            runtime,
            memory,
            wal: None,
            audit,
            epochs,
            faults: Arc::new(Mutex::new(faults)),
            seed,
            processes: 0,
            injected: Arc::default(),
        }
    }

    /// The world with a second store for the WAL tables, audited against
    /// the main store's metadata.
    pub fn with_wal_store(mut self) -> World {
        let memory: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let clock = Arc::new(SimClock::new(memory.clone(), self.runtime.clone()));
        let audit = AuditStore::watching(clock, Arc::new(self.audit.clone()), ROOT, self.runtime.clone());
        self.wal = Some((memory, audit));
        self
    }

    /// The WAL store as `process` sees it, if the world has one.
    pub fn wal_for(&self, process: &ProcessStore) -> Option<ProcessStore> {
        self.wal
            .as_ref()
            .map(|(_, audit)| process.over(Arc::new(audit.clone()), 0x5741_4c00))
    }

    /// Deletes audited so far, in both stores.
    pub fn deletes(&self) -> u64 {
        self.audit.deletes() + self.wal.as_ref().map_or(0, |(_, audit)| audit.deletes())
    }

    /// The store as the next process sees it.
    pub fn process(&mut self) -> ProcessStore {
        self.processes += 1;
        ProcessStore {
            inner: Arc::new(self.epochs.clone()),
            runtime: self.runtime.clone(),
            rng: Arc::new(SeededRng::new(
                self.seed.wrapping_mul(1_000_003).wrapping_add(self.processes),
            )),
            faults: self.faults.clone(),
            dead: Arc::default(),
            paused: Arc::default(),
            injected: self.injected.clone(),
            id: self.processes,
        }
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = faults;
    }

    /// A handle that changes the faults of every process from a client.
    pub fn fault_dial(&self) -> FaultDial {
        FaultDial(self.faults.clone())
    }

    /// Faults injected so far, over every process.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// Every object of the database: path and size, in path order (those
    /// of a WAL store of its own after the rest, prefixed `wal-store:`).
    pub async fn listing(&self) -> Vec<(String, u64)> {
        let mut listing = Vec::new();
        let stores =
            std::iter::once(("", &self.memory)).chain(self.wal.iter().map(|(memory, _)| ("wal-store:", memory)));
        for (prefix, memory) in stores {
            let objects = memory.list(&Path::from(ROOT)).await.expect("list the memory store");
            listing.extend(
                objects
                    .into_iter()
                    .map(|object| (format!("{prefix}{}", object.path), object.size)),
            );
        }
        listing
    }

    /// The latest manifest's replay point, last L0 sequence and table
    /// counts, and the WAL tables present: for `TALUS_SIM_VERBOSE`.
    pub async fn describe(&self) -> String {
        let manifests = VersionedStore::<Manifest>::new(
            self.memory.clone(),
            ROOT.into(),
            self.runtime.clone(),
            VersionedOptions::default(),
        );
        let latest = manifests.read_latest().await;
        let wal: Vec<String> = self
            .listing()
            .await
            .into_iter()
            .filter(|(path, _)| path.contains("/wal/"))
            .map(|(path, _)| {
                path.rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches('0')
                    .to_owned()
            })
            .collect();
        match latest {
            Ok(Some((id, manifest))) => format!(
                "manifest {id}: epochs {}/{}, replay after WAL {}, next WAL {}, last L0 seq {}, {} L0, {} runs; WAL {wal:?}",
                manifest.writer_epoch,
                manifest.compactor_epoch,
                manifest.replay_after_wal_id,
                manifest.next_wal_id,
                manifest.last_l0_seq,
                manifest.l0.len(),
                manifest.sorted_runs.len()
            ),
            other => format!("no manifest: {other:?}"),
        }
    }

    /// What the delete audits and the epoch watch found wrong.
    pub fn violations(&self) -> Vec<String> {
        let mut found = self.audit.violations();
        if let Some((_, audit)) = &self.wal {
            found.extend(audit.violations());
        }
        found.extend(lock(&self.epochs.violations).iter().cloned());
        found
    }
}
