//! Clean close: close drains what was accepted (a pending memtable flush
//! completes, even one whose upload is slow), then every later call gets
//! `Closed` without a cause; nothing hangs.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use talusdb::actors::runtime::Sim;
use talusdb::manifest::CheckpointOptions;
use talusdb::store::{GateStore, ObjectStoreAdapter, Store};
use talusdb::{ErrorKind, WriteOptions};

#[test]
fn close_waits_for_a_pending_flush_then_later_calls_are_closed() {
    let sim = Sim::new(41);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let gate = GateStore::new(Arc::new(ObjectStoreAdapter::in_memory()));
        let store: Arc<dyn Store> = Arc::new(gate.clone());
        let db = support::open_db("db", &store, &runtime).await;
        for n in 0..10 {
            db.put(format!("k{n}"), "v").await.expect("put");
        }
        let mut flush = support::flush_with_held_upload(&gate, &db, &runtime).await;
        let mut close = runtime.spawn({
            let db = db.clone();
            async move { db.close().await }
        });
        runtime.sleep(Duration::from_millis(50)).await;
        assert!(
            (&mut close).now_or_never().is_none(),
            "close waits for the upload in flight"
        );
        assert!((&mut flush).now_or_never().is_none());

        gate.release();
        flush.await.expect("task").expect("the accepted flush completes");
        close.await.expect("task").expect("close");
        db.closed().await.expect("closed cleanly");
        assert_eq!(db.status().map(|status| status.is_ok()), Some(true));

        let non_durable = WriteOptions {
            await_durable: false,
            ..WriteOptions::default()
        };
        for later in [
            db.put("after", "x").await.map(drop),
            db.put_with_options("after", "x", non_durable).await.map(drop),
            db.flush().await,
            db.flush_memtable().await,
            db.create_checkpoint(CheckpointOptions::default()).await.map(drop),
            db.get("k1").await.map(drop),
            db.close().await,
        ] {
            let error = later.expect_err("closed");
            assert_eq!(error.kind(), &ErrorKind::Closed { cause: None }, "{error}");
        }

        let reopened = support::open_db("db", &store, &runtime).await;
        assert_eq!(reopened.get("k9").await.expect("get").as_deref(), Some(&b"v"[..]));
        assert_eq!(reopened.get("after").await.expect("get"), None);
        reopened.close().await.expect("close");
    });
}

/// Regression: once a tick handler (a collection, a manifest poll, a
/// compactor poll) took longer than its period, the actor served ticks
/// only, and `collect_garbage`, `flush_memtable`, `compact` and `close`
/// waited forever. Every call must finish, whatever the periods.
#[test]
fn calls_finish_when_every_tick_takes_longer_than_its_period() {
    for (seed, latency, period) in [
        (1, Duration::from_millis(10), Duration::from_millis(5)),
        (2, Duration::from_millis(20), Duration::from_millis(30)),
    ] {
        let sim = Sim::new(seed);
        let runtime = sim.runtime();
        sim.block_on(async move {
            let memory: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
            let store: Arc<dyn Store> = Arc::new(talusdb::store::LatencyStore::new(memory, runtime.clone(), latency));
            let mut options = support::compacting_db_options(16, period);
            options.manifest_poll_interval = period;
            options.flush_interval = period;
            if let Some(compactor) = &mut options.compactor {
                compactor.poll_interval = period;
            }
            let db = talusdb::Db::builder("db", store)
                .runtime(runtime.clone())
                .options(options)
                .open()
                .await
                .expect("open");
            let limit = Duration::from_secs(120);
            for n in 0..200 {
                let options = WriteOptions {
                    await_durable: n % 10 == 0,
                    ..WriteOptions::default()
                };
                let put = db.put_with_options(format!("k{n:03}"), "v".repeat(100), options);
                support::within(&runtime, limit, "a put", put).await.expect("put");
            }
            let what = format!("{latency:?} per request, ticks every {period:?}");
            support::within(&runtime, limit, &format!("flush_memtable, {what}"), db.flush_memtable())
                .await
                .expect("flush_memtable");
            support::within(&runtime, limit, &format!("compact, {what}"), db.compact())
                .await
                .expect("compact");
            support::within(
                &runtime,
                limit,
                &format!("collect_garbage, {what}"),
                db.collect_garbage(talusdb::gc::GcMode::Delete),
            )
            .await
            .expect("collect_garbage");
            let checkpoint = db.create_checkpoint(CheckpointOptions::default());
            support::within(&runtime, limit, &format!("create_checkpoint, {what}"), checkpoint)
                .await
                .expect("checkpoint");
            let got = support::within(&runtime, limit, "a get", db.get("k007")).await;
            assert_eq!(got.expect("get").as_deref(), Some("v".repeat(100).as_bytes()));
            support::within(&runtime, limit, &format!("close, {what}"), db.close())
                .await
                .expect("close");
        });
    }
}
