//! A dry run of the garbage collector deletes nothing and reports exactly
//! what a real run at the same moment deletes.

mod support;

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use talusdb::actors::runtime::Sim;
use talusdb::manifest::CheckpointOptions;
use talusdb::store::{ObjectStoreAdapter, Store};
use talusdb::{Db, DbOptions, GcOptions, WriteOptions};

async fn listing(store: &Arc<dyn Store>) -> Vec<Path> {
    store
        .list(&Path::from("db"))
        .await
        .expect("list")
        .into_iter()
        .map(|info| info.path)
        .collect()
}

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
        let dry = db.collect_garbage(true).await.expect("dry run");
        assert!(dry.dry_run);
        assert_eq!(listing(&store).await, before, "a dry run deletes nothing");
        assert!(
            !dry.wal.is_empty() && !dry.tables.is_empty() && !dry.manifests.is_empty(),
            "{dry:?}"
        );
        assert!(!dry.checkpoints.is_empty(), "{dry:?}");

        let real = db.collect_garbage(false).await.expect("real run");
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
