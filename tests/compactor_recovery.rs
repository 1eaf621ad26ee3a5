//! The compactor stopped in the middle of a job, and two compactors on one
//! store: a restarted compactor redoes the job, nothing the manifest lists
//! goes missing, the stopped job's leftovers are collected, and an older
//! compactor is fenced without committing twice.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use talusdb::actors::Runtime;
use talusdb::actors::runtime::Sim;
use talusdb::compactor::{CompactorOptions, SubmitSpec};
use talusdb::manifest::{Manifest, VersionedOptions, VersionedStore};
use talusdb::store::{GateStore, ObjectStoreAdapter, Op, Store, TableId, Ulid};
use talusdb::{Db, DbBuilder, DbOptions, GcOptions, WriteOptions};

const KEYS: usize = 1500;

fn builder(store: &Arc<dyn Store>, runtime: &Runtime) -> DbBuilder {
    Db::builder("db", store.clone())
        .runtime(runtime.clone())
        .options(DbOptions {
            memtable_bytes: 8 << 10,
            wal_buffer_bytes: 1 << 10,
            max_unflushed_bytes: 64 << 10,
            max_l0_tables: 100,
            compactor: Some(CompactorOptions {
                target_table_bytes: 8 << 10,
                ..CompactorOptions::default()
            }),
            gc: Some(GcOptions::uniform(Duration::from_secs(60), Duration::ZERO)),
            ..DbOptions::default()
        })
}

fn value(n: usize) -> Bytes {
    Bytes::from(format!("value-{n}-{}", "v".repeat(60)))
}

/// A database with several L0 tables and no compactor of its own.
async fn fill(store: &Arc<dyn Store>, runtime: &Runtime) {
    let without_compactor = builder(store, runtime).options(DbOptions {
        compactor: None,
        gc: None,
        memtable_bytes: 8 << 10,
        wal_buffer_bytes: 1 << 10,
        max_unflushed_bytes: 64 << 10,
        max_l0_tables: 100,
        ..DbOptions::default()
    });
    let db = without_compactor.open().await.expect("open");
    for n in 0..KEYS {
        let options = WriteOptions {
            await_durable: false,
            ..WriteOptions::default()
        };
        db.put_with_options(format!("key{n:05}"), value(n), options)
            .await
            .expect("put");
        if n % 300 == 299 {
            db.flush_memtable().await.expect("flush");
        }
    }
    db.close_with(talusdb::CloseOptions { flush_memtable: true })
        .await
        .expect("close");
}

fn manifests(store: &Arc<dyn Store>, runtime: &Runtime) -> VersionedStore<Manifest> {
    VersionedStore::new(store.clone(), "db".into(), runtime.clone(), VersionedOptions::default())
}

async fn latest_manifest(store: &Arc<dyn Store>, runtime: &Runtime) -> Manifest {
    let latest = manifests(store, runtime).read_latest().await.expect("read");
    latest.expect("a manifest").1
}

/// Every table the manifest lists exists, and every key reads back.
async fn check_intact(store: &Arc<dyn Store>, runtime: &Runtime) {
    let manifest = latest_manifest(store, runtime).await;
    let present = present_tables(store).await;
    for table in manifest.tables() {
        assert!(
            present.contains(&table.id),
            "the manifest lists missing table {}",
            table.id
        );
    }
    let reader = builder(store, runtime).open_read_only().await.expect("reader");
    for n in (0..KEYS).step_by(7) {
        assert_eq!(reader.get(format!("key{n:05}")).await.expect("get"), Some(value(n)));
    }
}

async fn present_tables(store: &Arc<dyn Store>) -> HashSet<Ulid> {
    store
        .list(&"db/compacted".into())
        .await
        .expect("list")
        .iter()
        .filter_map(|info| match TableId::parse(&"db".into(), &info.path) {
            Some(TableId::Compacted(id)) => Some(id),
            _ => None,
        })
        .collect()
}

/// Stops a compactor at a crash point (a store request that never
/// returns), then starts another on the same store.
fn stopped_mid_job_then_restarted(crash_point: &'static str, seed: u64) {
    let sim = Sim::with_wall_origin(seed, support::FAR_FUTURE_MS);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let memory: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let gate = GateStore::new(memory.clone());
        let store: Arc<dyn Store> = Arc::new(gate.clone());
        fill(&store, &runtime).await;
        let l0_before = latest_manifest(&store, &runtime).await.l0.len();
        assert!(l0_before >= 4, "{l0_before} L0 tables");

        let first = builder(&store, &runtime).open_compactor().await.expect("compactor");
        gate.hold(Op::Put, crash_point, 1);
        let submit = runtime.spawn(async move {
            let outcome = first.submit(SubmitSpec::Everything).await;
            (first, outcome)
        });
        gate.wait_held(1).await;
        // The process dies here: the held request never completes.
        drop(submit);

        let second = builder(&store, &runtime).open_compactor().await.expect("restart");
        second.await_idle().await.expect("the job is redone");
        assert_eq!(second.stats().compactions, 1);
        let manifest = latest_manifest(&store, &runtime).await;
        assert!(manifest.l0.is_empty(), "{crash_point}: L0 compacted");
        assert_eq!(manifest.sorted_runs.len(), 1, "{crash_point}: one run");
        check_intact(&store, &runtime).await;
        second.close().await.expect("close");

        let collector = builder(&store, &runtime).collector().expect("collector");
        let report = collector
            .run(&talusdb::gc::Class::ALL, talusdb::gc::GcMode::Delete)
            .await
            .expect("gc");
        if crash_point == "/manifest/" {
            assert!(
                !report.tables.is_empty(),
                "the first attempt's outputs are orphans, and collected"
            );
        }
        let manifest = latest_manifest(&store, &runtime).await;
        let mut referenced: HashSet<Ulid> = manifest.tables().map(|table| table.id).collect();
        for checkpoint in manifest.live_checkpoints(runtime.wall_ms()) {
            let pinned = manifests(&store, &runtime)
                .read(checkpoint.manifest_id)
                .await
                .expect("pinned manifest");
            referenced.extend(pinned.tables().map(|table| table.id));
        }
        let orphans: Vec<Ulid> = present_tables(&store)
            .await
            .into_iter()
            .filter(|id| !referenced.contains(id))
            .collect();
        assert!(orphans.is_empty(), "{crash_point}: orphans left: {orphans:?}");
        check_intact(&store, &runtime).await;
    });
}

#[test]
fn a_compactor_stopped_while_writing_outputs_is_redone_on_restart() {
    stopped_mid_job_then_restarted("/compacted/", 41);
}

#[test]
fn a_compactor_stopped_before_its_commit_is_redone_and_its_outputs_collected() {
    stopped_mid_job_then_restarted("/manifest/", 42);
}

#[test]
fn an_older_compactor_is_fenced_and_never_commits_twice() {
    let sim = Sim::with_wall_origin(43, support::FAR_FUTURE_MS);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let gate = GateStore::new(Arc::new(ObjectStoreAdapter::in_memory()));
        let store: Arc<dyn Store> = Arc::new(gate.clone());
        fill(&store, &runtime).await;

        let older = Arc::new(builder(&store, &runtime).open_compactor().await.expect("older"));
        // Its commit (the protecting checkpoint, a manifest write) waits.
        gate.hold(Op::Put, "/manifest/", 1);
        let submitted = runtime.spawn({
            let older = older.clone();
            async move { older.submit(SubmitSpec::Everything).await }
        });
        gate.wait_held(1).await;

        let newer = builder(&store, &runtime).open_compactor().await.expect("newer");
        newer.await_idle().await.expect("the newer compactor redoes the job");
        gate.release();
        let refused = submitted.await.expect("task").expect_err("the older one cannot commit");
        assert!(refused.is_fenced() || refused.is_closed(), "{refused}");
        let closed = older.closed().await.expect_err("fenced");
        assert!(closed.is_fenced(), "{closed}");

        let manifest = latest_manifest(&store, &runtime).await;
        assert!(manifest.l0.is_empty());
        assert_eq!(manifest.sorted_runs.len(), 1, "committed once");
        let protections = manifest
            .checkpoints
            .iter()
            .filter(|checkpoint| {
                checkpoint
                    .name
                    .as_deref()
                    .is_some_and(|name| name.starts_with("compaction"))
            })
            .count();
        assert_eq!(protections, 1, "one commit, one protecting checkpoint");
        assert_eq!(newer.stats().compactions, 1);
        check_intact(&store, &runtime).await;
        newer.close().await.expect("close");
    });
}

#[test]
fn a_compactor_with_a_collector_serves_until_stopped_reports_progress_and_is_fenced_by_the_next() {
    let sim = Sim::new(21);
    let runtime = sim.runtime();
    let memory: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    sim.block_on(async move {
        // Object ages in simulated time, so that the zero minimum age
        // collects at once.
        let store: Arc<dyn Store> = Arc::new(support::sim_world::SimClock::new(memory, runtime.clone()));
        fill(&store, &runtime).await;
        let before = latest_manifest(&store, &runtime).await.l0.len();
        assert!(before >= 4, "{before} L0 tables");
        let first = builder(&store, &runtime)
            .open_compactor_and_collector()
            .await
            .expect("open");
        let (stop, stopped) = futures::channel::oneshot::channel::<()>();
        let serve_runtime = runtime.clone();
        let serving = runtime.spawn(async move {
            let served = first
                .run_until(async {
                    let _ = stopped.await;
                })
                .await;
            (served, first.stats())
        });
        // Past the compactor's 15 min protection of its inputs, with
        // collections every minute meanwhile.
        serve_runtime.sleep(Duration::from_secs(17 * 60)).await;
        let manifest = latest_manifest(&store, &runtime).await;
        assert!(
            manifest.l0.len() < before,
            "it compacted L0: {} tables",
            manifest.l0.len()
        );
        let listed: HashSet<Ulid> = manifest.tables().map(|table| table.id).collect();
        assert_eq!(present_tables(&store).await, listed, "it collected the inputs");
        check_intact(&store, &runtime).await;

        // A second one fences the first, whose serving ends with the cause.
        let second = builder(&store, &runtime)
            .open_compactor_and_collector()
            .await
            .expect("open");
        let (served, stats) = serving.await.expect("the serving task");
        let error = served.expect_err("fenced");
        assert!(error.is_fenced(), "{error}");
        drop(stop);
        assert!(stats.compactions >= 1, "{stats:?}");
        assert!(stats.collections >= 1 && stats.collected >= 1, "{stats:?}");
        assert_eq!(stats.l0_tables, manifest.l0.len() as u64, "{stats:?}");
        assert_eq!(stats.sorted_runs, manifest.sorted_runs.len() as u64, "{stats:?}");

        // The second stops when asked.
        second.run_until(async {}).await.expect("a clean stop");
        assert!(second.closed().await.is_ok());
        check_intact(&store, &runtime).await;
    });
}
