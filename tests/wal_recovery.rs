//! WAL recovery against a damaged log and against an old writer that keeps
//! writing: a table lost after it was acknowledged fails the open instead of
//! being skipped, and a new writer takes over whatever the old one does.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use talusdb::actors::Runtime;
use talusdb::actors::runtime::Sim;
use talusdb::manifest::{Manifest, VersionedOptions, VersionedStore};
use talusdb::store::{ByteRange, Layer, ObjectStoreAdapter, Op, Payload, PutMode, Requests, Store, StoreResult};
use talusdb::{Db, DbOptions, ErrorKind};

use support::TempDir;

/// No compactor or collector, and a memtable large enough that every
/// write stays in the WAL.
fn wal_only_options() -> DbOptions {
    DbOptions {
        compactor: None,
        gc: None,
        ..DbOptions::default()
    }
}

async fn wal_ids(store: &Arc<dyn Store>) -> Vec<String> {
    store
        .list(&Path::from("db/wal"))
        .await
        .expect("list")
        .into_iter()
        .map(|info| info.path.to_string())
        .collect()
}

/// The WAL table writer A leaves after writing `key` and closing: a table
/// of A's epoch, to plant as a fenced writer's upload.
async fn first_writers_table(store: &Arc<dyn Store>, runtime: &Runtime, key: &str, value: &str) -> Bytes {
    let first = Db::builder("db", store.clone())
        .runtime(runtime.clone())
        .options(wal_only_options())
        .open()
        .await
        .expect("writer A opens");
    first.put(key.to_owned(), value.to_owned()).await.expect("put");
    let table = wal_ids(store).await.pop().expect("A's WAL table");
    first.close().await.expect("close");
    store.get(&Path::from(table), ByteRange::All).await.expect("get").bytes
}

/// Plants `leftover` just above the highest WAL id (the fence of the
/// writer that opened last), where that writer writes next; returns its
/// path and the fence.
async fn plant_above_fence(store: &Arc<dyn Store>, leftover: Bytes) -> (Path, u64) {
    let fence: u64 = wal_ids(store)
        .await
        .iter()
        .filter_map(|path| path.rsplit('/').next()?.strip_suffix(".sst")?.parse().ok())
        .max()
        .expect("a fence");
    let next = Path::from(format!("db/wal/{:020}.sst", fence + 1));
    store
        .put(&next, leftover, PutMode::Create)
        .await
        .expect("the leftover lands");
    (next, fence)
}

/// Regression: deleting WAL table 40 of 43 (not yet in L0) opened without
/// error; reads then answered older values and the writer's open filled the
/// gap, making the loss permanent.
#[test]
fn a_wal_table_lost_below_an_acknowledged_one_fails_the_open_and_changes_nothing() {
    let sim = Sim::with_wall_origin(11, support::FAR_FUTURE_MS);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let open = || {
            Db::builder("db", store.clone())
                .runtime(runtime.clone())
                .options(wal_only_options())
                .open()
        };
        let db = open().await.expect("open");
        for n in 0..40 {
            // Each durable put waits for its own WAL table.
            db.put(format!("key-{:02}", n % 10), format!("value-{n}"))
                .await
                .expect("put");
        }
        db.close().await.expect("close");
        let before = wal_ids(&store).await;
        assert!(before.len() > 30, "one WAL table per durable put: {}", before.len());
        let victim = before[before.len() - 4].clone();
        store.delete(&Path::from(victim.as_str())).await.expect("delete");
        let damaged = wal_ids(&store).await;

        let error = open().await.expect_err("a lost acknowledged table must not be skipped");
        assert_eq!(*error.kind(), ErrorKind::Corruption, "{error}");
        assert!(error.to_string().contains(&victim), "names the lost object: {error}");
        let error = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .open_read_only()
            .await
            .expect_err("a reader must not answer past the loss either");
        assert_eq!(*error.kind(), ErrorKind::Corruption, "{error}");
        assert_eq!(wal_ids(&store).await, damaged, "a failed open writes no WAL table");
        assert!(open().await.is_err(), "and fails again the next time");
    });
}

/// Regression: a new writer opening while the old one wrote at full speed
/// failed its own open in 2 of 20 rounds ("could not place the fencing WAL
/// table: another writer keeps writing"): it raced the old writer for the
/// next id and lost every time.
#[test]
fn a_new_writer_takes_over_from_one_writing_at_full_speed() {
    const ROUNDS: usize = 12;
    const WRITERS: usize = 8;
    support::on_smol(|runtime| async move {
        let dir = TempDir::new("takeover");
        let store: Arc<dyn Store> =
            Arc::new(ObjectStoreAdapter::local_dir(dir.path(), runtime.clone()).expect("store"));
        let open = |runtime: Runtime| {
            Db::builder("db", store.clone())
                .runtime(runtime)
                .options(wal_only_options())
                .open()
        };
        // Key -> the value last acknowledged durably, over every round.
        let acknowledged: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        // Key -> the put that failed when its writer was fenced, if no later
        // put of the key was acknowledged: its WAL table may have landed
        // below the new writer's fence (the old writer learns of the fence
        // before it can acknowledge), so the new writer may hold it instead.
        let unanswered: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        let mut old = open(runtime.clone()).await.expect("first open");
        for round in 0..ROUNDS {
            let acks = Arc::new(AtomicUsize::new(0));
            let writers: Vec<_> = (0..WRITERS)
                .map(|writer| {
                    let (db, acknowledged, acks) = (old.clone(), acknowledged.clone(), acks.clone());
                    let unanswered = unanswered.clone();
                    runtime.spawn(async move {
                        for n in 0.. {
                            let (key, value) = (format!("w{writer}-{}", n % 50), format!("round {round} n {n}"));
                            match db.put(key.clone(), value.clone()).await {
                                Ok(_) => {
                                    unanswered.lock().expect("lock").remove(&key);
                                    acknowledged.lock().expect("lock").insert(key, value);
                                    acks.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(error) => {
                                    unanswered.lock().expect("lock").insert(key, value);
                                    return error;
                                }
                            }
                        }
                        unreachable!("the loop ends with the first error")
                    })
                })
                .collect();
            // Let the old writer get going.
            let going = async {
                while acks.load(Ordering::Relaxed) < 50 {
                    runtime.sleep(Duration::from_millis(1)).await;
                }
            };
            support::within(
                &runtime,
                Duration::from_secs(20),
                "the old writer's first writes",
                going,
            )
            .await;
            let opening = open(runtime.clone());
            let new = support::within(&runtime, Duration::from_secs(20), "the new writer's open", opening)
                .await
                .unwrap_or_else(|error| panic!("round {round}: the new writer must take over: {error}"));
            for writer in writers {
                let error = support::within(&runtime, Duration::from_secs(20), "the old writer's end", writer)
                    .await
                    .expect("writer task");
                assert!(error.is_fenced(), "round {round}: the old writer is fenced: {error}");
            }
            let expected = acknowledged.lock().expect("lock").clone();
            let maybe = unanswered.lock().expect("lock").clone();
            holds_every_value(&new, &expected, &maybe, &format!("round {round}")).await;
            old = new;
        }
        old.close().await.expect("close");
        let last = open(runtime.clone()).await.expect("reopen");
        let expected = acknowledged.lock().expect("lock").clone();
        let maybe = unanswered.lock().expect("lock").clone();
        holds_every_value(&last, &expected, &maybe, "after the last reopen").await;
        last.close().await.expect("close");
    });
}

/// Every key of `expected` reads as its value in `db`, or as the later
/// put of it in `maybe` that failed unanswered.
async fn holds_every_value(db: &Db, expected: &BTreeMap<String, String>, maybe: &BTreeMap<String, String>, when: &str) {
    for (key, value) in expected {
        let found = db.get(key).await.expect("get");
        let later = maybe.get(key).map(|later| Bytes::from(later.clone()));
        if found.is_some() && found == later {
            continue;
        }
        assert_eq!(
            found,
            Some(Bytes::from(value.clone())),
            "{when}: {key} keeps its last acknowledged value"
        );
    }
}

/// A store whose requests wait while it is paused: a process stopped (by
/// the OS, a long GC pause, a VM migration) with requests in flight.
#[derive(Debug, Clone)]
struct PausableStore {
    inner: Arc<dyn Store>,
    runtime: Runtime,
    paused: Arc<AtomicBool>,
}

impl Layer for PausableStore {
    fn around<T: Payload>(
        &self,
        _op: Op,
        _path: &Path,
        _requests: Requests,
        request: impl FnOnce(&dyn Store) -> BoxFuture<'static, StoreResult<T>>,
    ) -> BoxFuture<'static, StoreResult<T>> {
        let request = request(&*self.inner);
        let (paused, runtime) = (self.paused.clone(), self.runtime.clone());
        async move {
            // The paused process does nothing; polling its state is the
            // simulated passing of time, not a synchronisation.
            while paused.load(Ordering::SeqCst) {
                runtime.sleep(Duration::from_millis(100)).await;
            }
            request.await
        }
        .boxed()
    }
}

/// A writer paused with a durable write's WAL upload pending while a new
/// writer fences it, flushes past its WAL id and collects that WAL with a
/// minimum age of zero; then the old writer resumes. Its write must fail,
/// never be acknowledged (SlateDB's issue #1622): `pause` below the writer
/// lease tests the fence's retention, above the marker retention the lease
/// check.
fn a_paused_writer_resuming_after_gc_acknowledges_nothing(pause: Duration) {
    #[allow(
        clippy::disallowed_methods,
        reason = "the in-memory store stamps objects with the real time"
    )]
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let sim = Sim::with_wall_origin(3, now_ms);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let paused = Arc::new(AtomicBool::new(false));
        let old_store = PausableStore {
            inner: store.clone(),
            runtime: runtime.clone(),
            paused: paused.clone(),
        };
        let old = Db::builder("db", Arc::new(old_store))
            .runtime(runtime.clone())
            .options(DbOptions {
                // A stopped process's timers stop too.
                request_timeout: Duration::from_secs(3600),
                // No manifest poll of its own tells it about the new writer
                // in time: the WAL protocol alone must stop it.
                manifest_poll_interval: Duration::from_secs(3600),
                ..wal_only_options()
            })
            .open()
            .await
            .expect("open");
        old.put("before", "acknowledged").await.expect("put");
        paused.store(true, Ordering::SeqCst);
        let stalled = runtime.spawn({
            let old = old.clone();
            async move { old.put("zombie", "must never be acknowledged").await }
        });
        runtime.sleep(Duration::from_millis(50)).await;

        let new = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .options(DbOptions {
                gc: Some(talusdb::GcOptions::uniform(Duration::from_secs(3600), Duration::ZERO)),
                ..wal_only_options()
            })
            .open()
            .await
            .expect("the new writer opens");
        new.put("after", "acknowledged by the new writer").await.expect("put");
        new.flush_memtable().await.expect("flush past the old writer's WAL id");
        runtime.sleep(pause).await;
        new.collect_garbage(talusdb::gc::GcMode::Delete).await.expect("gc");

        paused.store(false, Ordering::SeqCst);
        let outcome = support::within(&runtime, Duration::from_secs(600), "the stalled write", stalled)
            .await
            .expect("task");
        let error = outcome.expect_err("a fenced writer's write is never acknowledged");
        assert!(error.is_fenced(), "{error}");
        assert_eq!(new.get("zombie").await.expect("get"), None);
        new.close().await.expect("close");
        let last = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .options(wal_only_options())
            .open()
            .await
            .expect("reopen");
        assert_eq!(last.get("zombie").await.expect("get"), None);
        assert_eq!(
            last.get("before").await.expect("get"),
            Some(Bytes::from("acknowledged"))
        );
        assert_eq!(
            last.get("after").await.expect("get"),
            Some(Bytes::from("acknowledged by the new writer"))
        );
        last.close().await.expect("close");
    });
}

#[test]
fn a_writer_paused_shorter_than_its_lease_meets_the_retained_fence() {
    a_paused_writer_resuming_after_gc_acknowledges_nothing(Duration::from_secs(20));
}

#[test]
fn a_writer_paused_past_the_fence_retention_rechecks_its_epoch() {
    a_paused_writer_resuming_after_gc_acknowledges_nothing(Duration::from_secs(200));
}

/// Regression (found by the simulation, seed 7 of `tests/sim.rs` once the
/// open's requests moved): a fenced writer's upload had landed just above
/// writer B's fence. B paused with its first WAL upload, at that id,
/// pending; writer C opened, skipped the older table and fenced above it.
/// B resumed within its epoch lease, replaced the older table as a fenced
/// writer's leftover, and acknowledged a write that no replay reads. A
/// replacement must be confirmed by a manifest read after it landed.
#[test]
fn a_paused_writer_replacing_a_table_newer_writers_passed_acknowledges_nothing() {
    let sim = Sim::with_wall_origin(5, support::FAR_FUTURE_MS);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let plain = |options: DbOptions| {
            Db::builder("db", store.clone())
                .runtime(runtime.clone())
                .options(options)
                .open()
        };
        let leftover = first_writers_table(&store, &runtime, "old", "acknowledged by A").await;

        let paused = Arc::new(AtomicBool::new(false));
        let b_store = PausableStore {
            inner: store.clone(),
            runtime: runtime.clone(),
            paused: paused.clone(),
        };
        let b = Db::builder("db", Arc::new(b_store))
            .runtime(runtime.clone())
            .options(DbOptions {
                request_timeout: Duration::from_secs(3600),
                manifest_poll_interval: Duration::from_secs(3600),
                ..wal_only_options()
            })
            .open()
            .await
            .expect("writer B opens");
        plant_above_fence(&store, leftover).await;

        paused.store(true, Ordering::SeqCst);
        let stalled = runtime.spawn({
            let b = b.clone();
            async move { b.put("zombie", "must never be acknowledged").await }
        });
        runtime.sleep(Duration::from_millis(50)).await;
        let c = plain(wal_only_options()).await.expect("writer C opens");
        c.put("after", "acknowledged by C").await.expect("put");
        // B runs again well within its epoch lease.
        paused.store(false, Ordering::SeqCst);
        let outcome = support::within(&runtime, Duration::from_secs(600), "the stalled write", stalled)
            .await
            .expect("task");
        let error = outcome.expect_err("a fenced writer's write is never acknowledged");
        assert!(error.is_fenced(), "{error}");
        c.close().await.expect("close");

        let last = plain(wal_only_options()).await.expect("reopen");
        assert_eq!(last.get("zombie").await.expect("get"), None);
        assert_eq!(
            last.get("old").await.expect("get"),
            Some(Bytes::from("acknowledged by A"))
        );
        assert_eq!(
            last.get("after").await.expect("get"),
            Some(Bytes::from("acknowledged by C"))
        );
        last.close().await.expect("close");
    });
}

/// A store whose writes to one path wait while it is held: a writer's
/// upload that never lands while its later ones do.
#[derive(Debug, Clone)]
struct HeldPath {
    inner: Arc<dyn Store>,
    runtime: Runtime,
    path: Arc<Mutex<Option<Path>>>,
}

impl Layer for HeldPath {
    fn around<T: Payload>(
        &self,
        op: Op,
        path: &Path,
        _requests: Requests,
        request: impl FnOnce(&dyn Store) -> BoxFuture<'static, StoreResult<T>>,
    ) -> BoxFuture<'static, StoreResult<T>> {
        let request = request(&*self.inner);
        let held = self.path.clone();
        let (path, runtime) = (path.clone(), self.runtime.clone());
        async move {
            // Polling in simulated time: the held upload simply never lands.
            while op == Op::Put && held.lock().expect("lock").as_ref() == Some(&path) {
                runtime.sleep(Duration::from_millis(100)).await;
            }
            request.await
        }
        .boxed()
    }
}

/// Regression (found by the simulation, seed 186): writer B's first data
/// upload met a fenced writer's table and B stopped before replacing it;
/// B's next upload landed. The next writer skipped the fenced writer's
/// table but replayed B's later one: a later write came back without the
/// earlier one, and the first memtable's rows started one sequence number
/// late, so the L0 writer waited for the missing one forever and every
/// flush hung.
#[test]
fn a_writer_whose_upload_met_a_fenced_writers_table_is_not_replayed_past_it() {
    let sim = Sim::with_wall_origin(6, support::FAR_FUTURE_MS);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let plain = || {
            Db::builder("db", store.clone())
                .runtime(runtime.clone())
                .options(wal_only_options())
                .open()
        };
        let leftover = first_writers_table(&store, &runtime, "a", "acknowledged by A").await;

        let held = Arc::new(Mutex::new(None));
        let b_store = HeldPath {
            inner: store.clone(),
            runtime: runtime.clone(),
            path: held.clone(),
        };
        let b = Db::builder("db", Arc::new(b_store))
            .runtime(runtime.clone())
            .options(wal_only_options())
            .open()
            .await
            .expect("writer B opens");
        // B's replacement of A's leftover is held back.
        let (next, fence) = plant_above_fence(&store, leftover).await;
        *held.lock().expect("lock") = Some(next);
        let quick = talusdb::WriteOptions {
            await_durable: false,
            ..talusdb::WriteOptions::default()
        };
        b.put_with_options("b1", "first", quick).await.expect("put");
        runtime.sleep(Duration::from_millis(300)).await;
        b.put_with_options("b2", "second", quick).await.expect("put");
        let after = Path::from(format!("db/wal/{:020}.sst", fence + 2));
        support::within(&runtime, Duration::from_secs(60), "B's second upload", async {
            while store.head(&after).await.is_err() {
                runtime.sleep(Duration::from_millis(50)).await;
            }
        })
        .await;

        // B stops there; C takes over.
        let c = plain().await.expect("writer C opens");
        assert_eq!(
            c.get("b2").await.expect("get"),
            None,
            "no later write without the earlier one"
        );
        assert_eq!(c.get("b1").await.expect("get"), None);
        assert_eq!(c.get("a").await.expect("get"), Some(Bytes::from("acknowledged by A")));
        c.put("c", "acknowledged by C").await.expect("put");
        support::within(&runtime, Duration::from_secs(600), "a flush", c.flush_memtable())
            .await
            .expect("flush");
        c.close().await.expect("close");
        let last = plain().await.expect("reopen");
        assert_eq!(last.get("b2").await.expect("get"), None);
        assert_eq!(
            last.get("c").await.expect("get"),
            Some(Bytes::from("acknowledged by C"))
        );
        last.close().await.expect("close");
    });
}

/// Regression: a salvaging open that gave up the first WAL table above L0
/// replayed rows starting a few sequence numbers late; the L0 writer,
/// which adds memtables in sequence order, waited for the lost ones and
/// every flush of that process hung.
#[test]
fn a_flush_after_salvaging_the_first_wal_table_completes() {
    let sim = Sim::with_wall_origin(7, support::FAR_FUTURE_MS);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let open = |salvage: bool| {
            Db::builder("db", store.clone())
                .runtime(runtime.clone())
                .options(wal_only_options())
                .salvage(salvage)
                .open()
        };
        let db = open(false).await.expect("open");
        for n in 0..5 {
            db.put(format!("key-{n}"), format!("value-{n}")).await.expect("put");
        }
        db.close().await.expect("close");
        // The first table is the open's fence; the next holds key-0.
        let victim = Path::from(wal_ids(&store).await[1].as_str());
        let bytes = store.get(&victim, ByteRange::All).await.expect("get").bytes;
        store
            .put(&victim, bytes.slice(..bytes.len() / 2), PutMode::Overwrite)
            .await
            .expect("truncate");

        let db = open(true).await.expect("a salvaging open opens");
        assert_eq!(db.salvaged().len(), 1);
        assert_eq!(db.get("key-0").await.expect("get"), None, "given up");
        support::within(&runtime, Duration::from_secs(600), "a flush", db.flush_memtable())
            .await
            .expect("flush");
        db.close().await.expect("close");
        let db = open(false).await.expect("reopen");
        for n in 1..5 {
            let got = db.get(format!("key-{n}")).await.expect("get");
            assert_eq!(got, Some(Bytes::from(format!("value-{n}"))), "key-{n}");
        }
        db.close().await.expect("close");
    });
}

/// A writer fenced by a newer one collects no garbage: the newer writer's
/// tables in flight are protected from other processes only by the minimum
/// age, and a paused writer waking up must not judge them.
#[test]
fn a_fenced_writers_collector_deletes_nothing() {
    let sim = Sim::with_wall_origin(4, support::FAR_FUTURE_MS);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let collected_by_hand = DbOptions {
            gc: Some(talusdb::GcOptions::uniform(Duration::from_secs(3600), Duration::ZERO)),
            manifest_poll_interval: Duration::from_secs(3600),
            ..wal_only_options()
        };
        let open = |options: DbOptions| {
            Db::builder("db", store.clone())
                .runtime(runtime.clone())
                .options(options)
                .open()
        };
        let old = open(collected_by_hand.clone()).await.expect("open");
        for n in 0..20 {
            old.put(format!("key{n}"), "x".repeat(600)).await.expect("put");
        }
        let new = open(collected_by_hand).await.expect("the new writer opens");
        new.flush_memtable().await.expect("the old WAL tables become garbage");
        let before = support::listing(&store).await;

        let error = old
            .collect_garbage(talusdb::gc::GcMode::Delete)
            .await
            .expect_err("fenced");
        assert!(error.is_fenced(), "{error}");
        let after = support::listing(&store).await;
        assert_eq!(before, after, "nothing deleted");

        let report = new
            .collect_garbage(talusdb::gc::GcMode::Delete)
            .await
            .expect("the owner collects");
        assert!(!report.wal.is_empty(), "there was garbage: {report:?}");
        new.close().await.expect("close");
    });
}

/// Regression: one truncated or corrupt WAL table made every open fail,
/// with no way out. The strict default stays; a salvaging open moves the
/// table aside, records the loss in the manifest and opens with the rest.
#[test]
fn a_salvaging_open_moves_a_damaged_wal_table_aside_and_keeps_the_rest() {
    type Damage = fn(&[u8]) -> Vec<u8>;
    let truncate: Damage = |bytes| bytes[..bytes.len() / 2].to_vec();
    let corrupt: Damage = |bytes| {
        let mut damaged = bytes.to_vec();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x40;
        damaged
    };
    for (seed, (how, damage)) in [("truncated", truncate), ("corrupt", corrupt)].into_iter().enumerate() {
        let sim = Sim::with_wall_origin(20 + seed as u64, support::FAR_FUTURE_MS);
        let runtime = sim.runtime();
        sim.block_on(async move {
            let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
            let open = |salvage: bool| {
                Db::builder("db", store.clone())
                    .runtime(runtime.clone())
                    .options(wal_only_options())
                    .salvage(salvage)
                    .open()
            };
            let db = open(false).await.expect("open");
            for n in 0..40 {
                // Each durable put waits for its own WAL table: put n has
                // sequence number n + 1.
                db.put(format!("key-{n:02}"), format!("value-{n}")).await.expect("put");
            }
            db.close().await.expect("close");
            let ids = wal_ids(&store).await;
            let victim = Path::from(ids[ids.len() - 10].as_str());
            let bytes = store.get(&victim, ByteRange::All).await.expect("get").bytes;
            let damaged = Bytes::from(damage(&bytes));
            store
                .put(&victim, damaged.clone(), PutMode::Overwrite)
                .await
                .expect("damage");

            let error = open(false).await.expect_err("a damaged table fails the default open");
            assert_eq!(*error.kind(), ErrorKind::Corruption, "{how}: {error}");
            assert!(error.to_string().contains(victim.as_ref()), "{how}: names it: {error}");
            assert!(
                error.to_string().contains("salvage"),
                "{how}: says the way out: {error}"
            );

            let db = open(true).await.expect("a salvaging open opens");
            let losses = db.salvaged().to_vec();
            assert_eq!(losses.len(), 1, "{how}: {losses:?}");
            let loss = &losses[0];
            assert!(
                victim.as_ref().ends_with(&format!("{:020}.sst", loss.wal_id)),
                "{how}: {loss:?}"
            );
            let last = loss.last_seq.expect("readable tables above it bound the range");
            assert!(loss.first_seq <= last, "{how}: {loss:?}");
            let moved = store
                .get(&Path::from(loss.moved_to.as_str()), ByteRange::All)
                .await
                .expect("the damaged bytes are kept aside");
            assert_eq!(moved.bytes, damaged, "{how}: moved, not rewritten");
            let lost = |n: u64| (loss.first_seq..=last).contains(&(n + 1));
            let check = |db: Db| async move {
                for n in 0..40u64 {
                    let got = db.get(format!("key-{n:02}")).await.expect("get");
                    let expected = (!lost(n)).then(|| Bytes::from(format!("value-{n}")));
                    assert_eq!(got, expected, "{how}: key-{n:02}");
                }
                db
            };
            let db = check(db).await;
            db.put("after", "salvage").await.expect("writes go on");
            db.close().await.expect("close");

            let db = open(false).await.expect("a second, ordinary open is clean");
            assert!(db.salvaged().is_empty());
            assert_eq!(db.get("after").await.expect("get"), Some(Bytes::from("salvage")));
            let db = check(db).await;
            db.close().await.expect("close");
            let manifests = VersionedStore::<Manifest>::new(
                store.clone(),
                "db".into(),
                runtime.clone(),
                VersionedOptions::default(),
            );
            let (_, manifest) = manifests.read_latest().await.expect("read").expect("a manifest");
            assert_eq!(manifest.losses, losses, "{how}: the loss is recorded for good");
        });
    }
}
