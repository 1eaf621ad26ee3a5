//! Reads across a compaction: a snapshot keeps reading the versions it
//! saw, and a scan that started before the commit (and before the
//! collector ran) finishes with the rows it started on — the inputs stay
//! protected by the compaction's checkpoint (15 minutes).

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use talusdb::actors::runtime::Sim;
use talusdb::store::{ObjectStoreAdapter, Store};
use talusdb::{Db, DbOptions, GcOptions, ScanOptions, WriteOptions};

const KEYS: usize = 800;

fn key(n: usize) -> String {
    format!("key{n:04}")
}

#[test]
fn snapshots_and_running_scans_survive_compaction_and_collection() {
    let sim = Sim::with_wall_origin(23, support::FAR_FUTURE_MS);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let db = Db::builder("db", store)
            .runtime(runtime.clone())
            .options(DbOptions {
                memtable_bytes: 4 << 10,
                wal_buffer_bytes: 1 << 10,
                max_unflushed_bytes: 32 << 10,
                gc: Some(GcOptions::uniform(Duration::from_secs(3600), Duration::ZERO)),
                ..DbOptions::default()
            })
            .open()
            .await
            .expect("open");
        let quick = WriteOptions {
            await_durable: false,
            ..WriteOptions::default()
        };
        for n in 0..KEYS {
            db.put_with_options(key(n), format!("old-{n}"), quick)
                .await
                .expect("put");
        }
        db.flush_memtable().await.expect("flush");
        let snapshot = db.snapshot();
        for n in 0..KEYS {
            if n % 3 == 0 {
                db.delete_with_options(key(n), quick).await.expect("delete");
            } else {
                db.put_with_options(key(n), format!("new-{n}"), quick)
                    .await
                    .expect("put");
            }
        }
        db.flush_memtable().await.expect("flush");
        // One row at a time, so the scan is still reading tables later.
        let mut scan = Box::pin(db.scan_with_options::<&[u8]>(
            ..,
            ScanOptions {
                read_ahead_blocks: 1,
                ..ScanOptions::default()
            },
        ));
        let mut scanned: Vec<(Bytes, Bytes)> = Vec::new();
        for _ in 0..10 {
            scanned.push(scan.next().await.expect("a row").expect("row"));
        }

        let summary = db.compact().await.expect("compact").expect("work");
        assert_eq!(
            summary.rows_out, summary.rows_in,
            "the snapshot holds every old version: {summary:?}"
        );
        let collected = db.collect_garbage(talusdb::gc::GcMode::Delete).await.expect("gc");
        assert!(collected.tables.is_empty(), "the inputs are protected: {collected:?}");

        scanned.extend(scan.try_collect::<Vec<_>>().await.expect("the scan finishes"));
        let expected: Vec<(Bytes, Bytes)> = (0..KEYS)
            .filter(|n| n % 3 != 0)
            .map(|n| (Bytes::from(key(n)), Bytes::from(format!("new-{n}"))))
            .collect();
        assert_eq!(scanned, expected);

        for n in (0..KEYS).step_by(7) {
            let old = snapshot.get(key(n)).await.expect("snapshot get");
            assert_eq!(
                old,
                Some(Bytes::from(format!("old-{n}"))),
                "the snapshot still sees {}",
                key(n)
            );
        }
        let all: Vec<(Bytes, Bytes)> = snapshot.scan::<&[u8]>(..).try_collect().await.expect("scan");
        assert_eq!(all.len(), KEYS, "the snapshot sees every old row");

        // Once the snapshot is gone, a later compaction drops what it held.
        drop(snapshot);
        runtime.sleep(Duration::from_secs(2)).await;
        db.put_with_options("zzz", "last", quick).await.expect("put");
        db.flush_memtable().await.expect("flush");
        let again = db.compact().await.expect("compact").expect("work");
        assert_eq!(again.rows_out, (KEYS - KEYS.div_ceil(3) + 1) as u64, "{again:?}");
        db.close().await.expect("close");
    });
}
