//! Compaction and garbage collection under sustained random writes: L0
//! stays bounded, every read matches a model, space is reclaimed, and the
//! collector never deletes anything still referenced (checked at every
//! delete), over many seeds with the clock far ahead.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use talusdb::actors::Runtime;
use talusdb::actors::runtime::Sim;
use talusdb::manifest::CheckpointOptions;
use talusdb::store::{ObjectStoreAdapter, Store};
use talusdb::{Db, DbOptions, WriteOptions};

use support::Gen;
use support::audit::AuditStore;

const MAX_L0: usize = 6;

type Model = BTreeMap<Bytes, Bytes>;

fn options() -> DbOptions {
    support::compacting_db_options(MAX_L0, Duration::from_secs(5))
}

async fn open(store: &Arc<dyn Store>, runtime: &Runtime) -> Db {
    Db::builder("db", store.clone())
        .runtime(runtime.clone())
        .options(options())
        .open()
        .await
        .expect("open")
}

/// Number and total size of the objects under `root`.
async fn usage(store: &Arc<dyn Store>, root: &str) -> (usize, u64) {
    let objects = store.list(&Path::from(root)).await.expect("list");
    (objects.len(), objects.iter().map(|object| object.size).sum())
}

async fn check_all(db: &Db, model: &Model, context: &str) {
    let scanned: Vec<(Bytes, Bytes)> = db.scan::<&[u8]>(..).try_collect().await.expect("scan");
    let expected: Vec<(Bytes, Bytes)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(scanned, expected, "{context}: a full scan");
    for n in 0..300 {
        let key = Bytes::from(format!("key{n:04}"));
        assert_eq!(
            db.get(&key).await.expect("get"),
            model.get(&key).cloned(),
            "{context}: {key:?}"
        );
    }
}

/// One random step: a put, delete, get or (rarely) something slower.
async fn step(db: &Db, model: &mut Model, generator: &mut Gen, step: usize, runtime: &Runtime) {
    let options = WriteOptions {
        await_durable: generator.next(10) == 0,
        ..WriteOptions::default()
    };
    match generator.next(1000) {
        0..=549 => {
            let key = generator.key();
            let value = Bytes::from(format!("v{step}-{}", "x".repeat(50 + step % 100)));
            db.put_with_options(key.clone(), value.clone(), options)
                .await
                .expect("put");
            model.insert(key, value);
        }
        550..=749 => {
            let key = generator.key();
            db.delete_with_options(key.clone(), options).await.expect("delete");
            model.remove(&key);
        }
        750..=974 => {
            let key = generator.key();
            assert_eq!(
                db.get(&key).await.expect("get"),
                model.get(&key).cloned(),
                "step {step}: {key:?}"
            );
        }
        975..=989 => {
            let lifetime = Duration::from_secs(1 + generator.next(120));
            db.create_checkpoint(CheckpointOptions {
                lifetime: Some(lifetime),
                ..CheckpointOptions::default()
            })
            .await
            .expect("checkpoint");
        }
        990..=995 => runtime.sleep(Duration::from_millis(generator.next(5000))).await,
        _ => {
            // Time passes: checkpoints and protections expire.
            runtime.sleep(Duration::from_secs(generator.next(20 * 60))).await;
        }
    }
}

#[test]
fn sustained_writes_keep_l0_bounded_match_a_model_and_reclaim_space() {
    let sim = Sim::with_wall_origin(7, support::FAR_FUTURE_MS);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let memory: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let audit = AuditStore::new(memory.clone(), "db", runtime.clone());
        let store: Arc<dyn Store> = Arc::new(audit.clone());
        let db = open(&store, &runtime).await;
        let mut model = Model::new();
        let mut generator = Gen(7);
        let mut peak_l0 = 0;
        for n in 0..4000 {
            step(&db, &mut model, &mut generator, n, &runtime).await;
            peak_l0 = peak_l0.max(db.stats().l0_tables);
        }
        assert!(peak_l0 <= MAX_L0 as u64, "L0 reached {peak_l0}");
        let stats = db.stats();
        assert!(stats.compactor.compactions >= 3, "{stats:?}");
        check_all(&db, &model, "before the full compaction").await;

        db.flush().await.expect("flush");
        let before = usage(&memory, "db").await;
        let summary = db.compact().await.expect("compact").expect("something to compact");
        assert!(summary.rows_out < summary.rows_in, "{summary:?}");
        // Past the inputs' protection, then collect (twice: removing the
        // expired checkpoints writes one more manifest version).
        runtime.sleep(Duration::from_secs(16 * 60)).await;
        db.collect_garbage(talusdb::gc::GcMode::Delete).await.expect("gc");
        db.collect_garbage(talusdb::gc::GcMode::Delete).await.expect("gc");
        let after = usage(&memory, "db").await;
        assert!(
            after.0 < before.0 && after.1 < before.1,
            "objects and bytes shrink: {before:?} -> {after:?}"
        );
        check_all(&db, &model, "after compaction and GC").await;
        db.close().await.expect("close");

        let reopened = open(&store, &runtime).await;
        check_all(&reopened, &model, "after reopening").await;
        reopened.close().await.expect("close");
        assert!(audit.deletes() > 20, "the collector ran: {}", audit.deletes());
        assert_eq!(audit.violations(), Vec::<String>::new());
    });
}

/// Many seeds: random writes, checkpoints, time jumps far past every
/// expiry, and reopenings, while a second task collects garbage with no
/// minimum age every few steps; every delete is checked against the
/// metadata of that moment.
#[test]
fn the_collector_never_deletes_anything_referenced_over_many_seeds() {
    let seeds: u64 = std::env::var("TALUS_GC_SEEDS")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(6);
    for seed in 1..=seeds {
        let sim = Sim::with_wall_origin(seed, support::FAR_FUTURE_MS);
        let runtime = sim.runtime();
        sim.block_on(async move {
            let memory: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
            let audit = AuditStore::new(memory, "db", runtime.clone());
            let store: Arc<dyn Store> = Arc::new(audit.clone());
            let mut db = open(&store, &runtime).await;
            let mut model = Model::new();
            let mut generator = Gen(seed * 1000);
            let (mut poke, mut collector) = collect_in_background(&db, &runtime);
            for n in 0..1500 {
                step(&db, &mut model, &mut generator, n, &runtime).await;
                if n % 5 == 0 {
                    let _ = poke.try_send(());
                }
                if generator.next(500) == 0 {
                    db.close().await.expect("close");
                    drop(poke);
                    let _ = collector.await;
                    db = open(&store, &runtime).await;
                    (poke, collector) = collect_in_background(&db, &runtime);
                }
            }
            check_all(&db, &model, &format!("seed {seed}")).await;
            db.close().await.expect("close");
            drop(poke);
            let _ = collector.await;
            assert!(audit.deletes() > 0, "seed {seed}: the collector ran");
            assert_eq!(audit.violations(), Vec::<String>::new(), "seed {seed}");
        });
    }
}

/// Collects garbage each time it is poked (a poke while it collects is
/// remembered once), concurrently with the caller's writes, until `db`
/// closes.
fn collect_in_background(db: &Db, runtime: &Runtime) -> (Poke, talusdb::actors::runtime::JoinHandle<()>) {
    let (poke, mut pokes) = futures::channel::mpsc::channel::<()>(1);
    let db = db.clone();
    let task = runtime.spawn(async move {
        while futures::StreamExt::next(&mut pokes).await.is_some() {
            match db.collect_garbage(talusdb::gc::GcMode::Delete).await {
                Ok(_) => {}
                Err(error) if error.is_closed() => return,
                Err(error) => panic!("collection failed: {error}"),
            }
        }
    });
    (poke, task)
}

type Poke = futures::channel::mpsc::Sender<()>;
