//! Durability, fencing and fatal errors: acknowledged writes survive a crash
//! and a second writer; a store that fails closes the database with the
//! cause, and every caller and waiter hears it.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::StreamExt;
use talusdb::actors::Runtime;
use talusdb::actors::runtime::Sim;
use talusdb::manifest::CheckpointOptions;
use talusdb::store::{Fault, FaultyStore, GateStore, ObjectStoreAdapter, Store};
use talusdb::{Db, Durability, ErrorKind, ReadOptions, ScanOptions, WriteBatch, WriteOptions};

async fn open(store: &Arc<dyn Store>, runtime: &Runtime) -> Db {
    support::open_db("db", store, runtime).await
}

/// Fails the test if `future` is not done within `limit` of virtual time.
async fn within<T>(runtime: &Runtime, limit: Duration, future: impl Future<Output = T>) -> T {
    futures::select_biased! {
        value = future.fuse() => value,
        () = runtime.sleep(limit).fuse() => panic!("still waiting after {limit:?}: a hang"),
    }
}

#[test]
fn acknowledged_writes_survive_a_crash_and_batches_are_never_torn() {
    let sim = Sim::new(11);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let db = open(&store, &runtime).await;
        let writers: Vec<_> = (0..8u64)
            .map(|writer| {
                let db = db.clone();
                runtime.spawn(async move {
                    let mut acknowledged = Vec::new();
                    for round in 0..200u64 {
                        let mut batch = WriteBatch::new();
                        for part in 0..4 {
                            batch.put(format!("w{writer}-r{round}-p{part}"), format!("{round}"));
                        }
                        let options = WriteOptions {
                            await_durable: round % 3 != 0,
                            ..WriteOptions::default()
                        };
                        match db.write_with_options(batch, options).await {
                            Ok(_) if options.await_durable => acknowledged.push(round),
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                    acknowledged
                })
            })
            .collect();
        // Crash part-way: the database is dropped with writes in flight.
        runtime.sleep(Duration::from_millis(40)).await;
        drop(db);
        let mut acknowledged = Vec::new();
        for (writer, task) in writers.into_iter().enumerate() {
            let rounds = task.await.expect("writer task");
            acknowledged.extend(rounds.into_iter().map(|round| (writer, round)));
        }
        assert!(
            !acknowledged.is_empty(),
            "some writes were acknowledged before the crash"
        );

        let reopened = open(&store, &runtime).await;
        for (writer, round) in &acknowledged {
            let value = reopened.get(format!("w{writer}-r{round}-p0")).await.expect("get");
            assert_eq!(value, Some(Bytes::from(round.to_string())), "acknowledged write lost");
        }
        for writer in 0..8 {
            for round in 0..200 {
                let mut present = 0;
                for part in 0..4 {
                    if reopened
                        .get(format!("w{writer}-r{round}-p{part}"))
                        .await
                        .expect("get")
                        .is_some()
                    {
                        present += 1;
                    }
                }
                assert!(
                    present == 0 || present == 4,
                    "batch w{writer} r{round} torn: {present} of 4"
                );
            }
        }
        reopened.close().await.expect("close");
        let again = open(&store, &runtime).await;
        assert!(
            again.get("w0-r1-p0").await.expect("get").is_some(),
            "opening twice is idempotent"
        );
        again.close().await.expect("close");
    });
}

#[test]
fn a_second_writer_fences_the_first_and_keeps_its_acknowledged_writes() {
    let sim = Sim::new(12);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let first = open(&store, &runtime).await;
        for n in 0..50 {
            first.put(format!("k{n}"), "first").await.expect("put");
        }
        first.flush_memtable().await.expect("to L0");
        first.put("late", "acknowledged").await.expect("put");

        let second = open(&store, &runtime).await;
        let error = within(&runtime, Duration::from_secs(60), first.put("stale", "never")).await;
        let error = error.expect_err("the old writer is fenced");
        assert!(error.is_fenced(), "{error}");
        let later = first.get("k1").await.expect_err("closed");
        assert!(later.is_fenced(), "every later call carries the fence: {later}");
        assert!(within(&runtime, Duration::from_secs(60), first.closed()).await.is_err());

        assert_eq!(
            second.get("stale").await.expect("get"),
            None,
            "the fenced write never appears"
        );
        assert_eq!(
            second.get("late").await.expect("get"),
            Some(Bytes::from("acknowledged"))
        );
        for n in 0..50 {
            assert_eq!(
                second.get(format!("k{n}")).await.expect("get"),
                Some(Bytes::from("first"))
            );
        }
        second.put("stale", "now mine").await.expect("the new writer writes");
        second.close().await.expect("close");
    });
}

#[test]
fn a_failing_store_closes_the_database_and_every_waiter_hears_why() {
    let sim = Sim::new(13);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let faulty = FaultyStore::new(Arc::new(ObjectStoreAdapter::in_memory()), 13);
        let store: Arc<dyn Store> = Arc::new(faulty.clone());
        let db = open(&store, &runtime).await;
        db.put("before", "ok").await.expect("put");
        faulty.fail_fraction(
            1.0,
            &[talusdb::store::Op::Put, talusdb::store::Op::MultipartPart],
            Fault::Lost,
        );

        let durable = within(&runtime, Duration::from_secs(120), db.put("doomed", "x")).await;
        let error = durable.expect_err("the WAL upload fails beyond its retries");
        match error.kind() {
            ErrorKind::Closed { cause: Some(cause) } => {
                assert_eq!(cause.kind(), &ErrorKind::Unavailable, "{cause}");
                assert!(cause.message().contains("wal/"), "the cause names the object: {cause}");
            }
            other => panic!("expected Closed with a cause, got {other:?}"),
        }
        for later in [
            within(&runtime, Duration::from_secs(5), db.put("after", "x"))
                .await
                .map(drop),
            within(&runtime, Duration::from_secs(5), db.flush()).await,
            within(&runtime, Duration::from_secs(5), db.flush_memtable()).await,
            within(
                &runtime,
                Duration::from_secs(5),
                db.create_checkpoint(CheckpointOptions::default()),
            )
            .await
            .map(drop),
            within(&runtime, Duration::from_secs(5), db.get("before"))
                .await
                .map(drop),
            within(&runtime, Duration::from_secs(5), db.close()).await,
        ] {
            let later = later.expect_err("closed");
            assert_eq!(later.kind(), error.kind(), "the same cause for every later call");
        }
        assert_eq!(db.status().map(|status| status.is_err()), Some(true));
    });
}

#[test]
fn pending_flush_and_checkpoint_waiters_hear_the_failure() {
    let sim = Sim::new(14);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let faulty = FaultyStore::new(Arc::new(ObjectStoreAdapter::in_memory()), 14);
        let store: Arc<dyn Store> = Arc::new(faulty.clone());
        let db = open(&store, &runtime).await;
        for n in 0..20 {
            db.put(format!("k{n}"), "v").await.expect("put");
        }
        // Every upload fails from here on: the memtable flush and the checkpoint never land.
        faulty.fail_fraction(1.0, &[talusdb::store::Op::Put], Fault::Lost);
        let flush = runtime.spawn({
            let db = db.clone();
            async move { db.flush_memtable().await }
        });
        let checkpoint = runtime.spawn({
            let db = db.clone();
            async move { db.create_checkpoint(CheckpointOptions::default()).await }
        });
        let flushed = within(&runtime, Duration::from_secs(120), flush).await.expect("task");
        let checkpointed = within(&runtime, Duration::from_secs(120), checkpoint)
            .await
            .expect("task");
        assert!(flushed.expect_err("failed").is_closed());
        assert!(checkpointed.expect_err("failed").is_closed());
    });
}

#[test]
fn durable_reads_see_only_what_reached_the_store() {
    let sim = Sim::new(15);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let gate = GateStore::new(Arc::new(ObjectStoreAdapter::in_memory()));
        let store: Arc<dyn Store> = Arc::new(gate.clone());
        let db = open(&store, &runtime).await;
        db.put("old", "durable").await.expect("put");
        gate.hold(talusdb::store::Op::Put, "/wal/", usize::MAX);
        let options = WriteOptions {
            await_durable: false,
            ..WriteOptions::default()
        };
        db.put_with_options("new", "in memory", options).await.expect("put");
        db.put_with_options("old", "overwritten", options).await.expect("put");

        let durable = ReadOptions {
            durability: Durability::Durable,
        };
        assert_eq!(db.get("new").await.expect("get").as_deref(), Some(&b"in memory"[..]));
        assert_eq!(db.get_with_options("new", durable).await.expect("get"), None);
        assert_eq!(
            db.get_with_options("old", durable).await.expect("get").as_deref(),
            Some(&b"durable"[..]),
            "a durable read sees the durable version, not the newer one"
        );
        let scan_durable = ScanOptions {
            durability: Durability::Durable,
            ..ScanOptions::default()
        };
        let rows: Vec<_> = db
            .scan_with_options::<&str>(.., scan_durable)
            .map(|row| row.expect("row"))
            .collect()
            .await;
        assert_eq!(rows, vec![(Bytes::from("old"), Bytes::from("durable"))]);

        gate.release();
        within(&runtime, Duration::from_secs(60), db.flush())
            .await
            .expect("flush");
        assert_eq!(
            db.get_with_options("new", durable).await.expect("get").as_deref(),
            Some(&b"in memory"[..])
        );
        assert_eq!(
            db.get_with_options("old", durable).await.expect("get").as_deref(),
            Some(&b"overwritten"[..])
        );
        db.close().await.expect("close");
    });
}
