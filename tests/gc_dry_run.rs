//! A dry run of the garbage collector deletes nothing and reports exactly
//! what a real run at the same moment deletes; an object whose age is
//! unknown is never collected on its age.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use talusdb::actors::runtime::Sim;
use talusdb::manifest::CheckpointOptions;
use talusdb::store::{
    ByteRange, Fetched, ObjectInfo, ObjectStoreAdapter, PutMode, Store, StoreResult, UNKNOWN_MODIFIED_MS,
};
use talusdb::{Db, DbOptions, GcOptions, WriteOptions};

use support::listing;

#[test]
fn a_dry_run_deletes_nothing_and_reports_what_a_real_run_deletes() {
    let sim = Sim::with_wall_origin(5, support::FAR_FUTURE_MS);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let db = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .options(DbOptions {
                memtable_bytes: 4 << 10,
                wal_buffer_bytes: 1 << 10,
                max_unflushed_bytes: 32 << 10,
                // Collected by hand only: the intervals never come round.
                gc: Some(GcOptions::uniform(Duration::from_secs(365 * 86_400), Duration::ZERO)),
                ..DbOptions::default()
            })
            .open()
            .await
            .expect("open");
        for n in 0..2000 {
            let options = WriteOptions {
                await_durable: n % 50 == 0,
                ..WriteOptions::default()
            };
            db.put_with_options(
                format!("key{:04}", n % 400),
                format!("value-{n}-{}", "x".repeat(40)),
                options,
            )
            .await
            .expect("put");
        }
        db.create_checkpoint(CheckpointOptions {
            lifetime: Some(Duration::from_secs(10)),
            name: Some("short".into()),
            pin: None,
        })
        .await
        .expect("checkpoint");
        db.compact().await.expect("compact");
        // Every protection and the checkpoint expire.
        runtime.sleep(Duration::from_secs(20 * 60)).await;

        let before = listing(&store).await;
        let dry = db.collect_garbage(talusdb::gc::GcMode::DryRun).await.expect("dry run");
        assert!(dry.dry_run);
        assert_eq!(listing(&store).await, before, "a dry run deletes nothing");
        assert!(
            !dry.wal.is_empty() && !dry.tables.is_empty() && !dry.manifests.is_empty(),
            "{dry:?}"
        );
        assert!(!dry.checkpoints.is_empty(), "{dry:?}");

        let real = db.collect_garbage(talusdb::gc::GcMode::Delete).await.expect("real run");
        assert!(!real.dry_run);
        assert_eq!(
            (
                &real.wal,
                &real.tables,
                &real.manifests,
                &real.compactions,
                &real.checkpoints
            ),
            (
                &dry.wal,
                &dry.tables,
                &dry.manifests,
                &dry.compactions,
                &dry.checkpoints
            ),
            "the same set"
        );
        let after = listing(&store).await;
        let removed = before.iter().filter(|path| !after.contains(path)).count();
        let objects = real.wal.len() + real.tables.len() + real.manifests.len() + real.compactions.len();
        assert_eq!(removed, objects, "every reported object is gone, nothing else");
        for n in (0..400).step_by(13) {
            assert!(db.get(format!("key{n:04}")).await.expect("get").is_some(), "key{n:04}");
        }
        db.close().await.expect("close");
    });
}

/// Lists objects with an unknown modification time (a store that gave none
/// we can read).
#[derive(Clone, Debug)]
struct AgelessStore(Arc<dyn Store>);

impl Store for AgelessStore {
    fn get(&self, path: &Path, range: ByteRange) -> BoxFuture<'static, StoreResult<Fetched>> {
        self.0.get(path, range)
    }

    fn head(&self, path: &Path) -> BoxFuture<'static, StoreResult<ObjectInfo>> {
        let head = self.0.head(path);
        async move { head.await.map(ageless) }.boxed()
    }

    fn put(&self, path: &Path, bytes: Bytes, mode: PutMode) -> BoxFuture<'static, StoreResult<()>> {
        self.0.put(path, bytes, mode)
    }

    fn put_multipart(&self, path: &Path, parts: Vec<Bytes>) -> BoxFuture<'static, StoreResult<()>> {
        self.0.put_multipart(path, parts)
    }

    fn list(&self, prefix: &Path) -> BoxFuture<'static, StoreResult<Vec<ObjectInfo>>> {
        let list = self.0.list(prefix);
        async move { list.await.map(|infos| infos.into_iter().map(ageless).collect()) }.boxed()
    }

    fn delete(&self, path: &Path) -> BoxFuture<'static, StoreResult<()>> {
        self.0.delete(path)
    }
}

fn ageless(mut info: ObjectInfo) -> ObjectInfo {
    info.modified_ms = UNKNOWN_MODIFIED_MS;
    info
}

/// Regression: an unreadable modification time counted as 1970, so the
/// collector took every such object for ancient. An unknown age is young:
/// nothing is collected on its age alone, whatever the clock says.
#[test]
fn objects_of_unknown_age_are_never_old_enough_to_collect() {
    let sim = Sim::with_wall_origin(6, support::FAR_FUTURE_MS);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let memory: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let options = DbOptions {
            memtable_bytes: 4 << 10,
            gc: Some(GcOptions::uniform(
                Duration::from_secs(365 * 86_400),
                Duration::from_secs(60),
            )),
            ..DbOptions::default()
        };
        let open = |store: Arc<dyn Store>| {
            Db::builder("db", store)
                .runtime(runtime.clone())
                .options(options.clone())
                .open()
        };
        let db = open(Arc::new(AgelessStore(memory.clone()))).await.expect("open");
        for n in 0..500 {
            db.put(format!("key{n:04}"), "x".repeat(40)).await.expect("put");
        }
        db.flush_memtable().await.expect("the WAL tables become garbage");
        db.compact().await.expect("the L0 tables become garbage");
        let before = listing(&memory).await;
        let report = db.collect_garbage(talusdb::gc::GcMode::Delete).await.expect("gc");
        assert_eq!(listing(&memory).await, before, "nothing collected: {report:?}");
        db.close().await.expect("close");

        // The same objects with their real (ancient, by this clock) ages go,
        // once the compaction's protection of its inputs has expired.
        runtime.sleep(Duration::from_secs(20 * 60)).await;
        let db = open(memory.clone()).await.expect("reopen");
        let report = db.collect_garbage(talusdb::gc::GcMode::Delete).await.expect("gc");
        assert!(!report.wal.is_empty() && !report.tables.is_empty(), "{report:?}");
        db.close().await.expect("close");
    });
}
